"""Tests of analyzer.areal: known answers, an independent implementation (surfalize), scale and bad inputs."""
from __future__ import annotations

import doctest
import math
import time
import warnings

import numpy as np
import pytest
from scipy import integrate, ndimage

from analyzer import areal
from analyzer.areal import LEVELS, PARAMETERS, areal_parameters
from analyzer.errors import ImageError, OptionError

NAMES = [p[0] for p in PARAMETERS]


def _rough_surface(shape=(160, 220), *, seed=0, corr_px=3.0, rms_mm=0.02):
    """Gaussian-correlated random heights in mm (a stand-in for a relief proxy)."""
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.normal(size=shape), corr_px, mode="wrap")
    return z / z.std() * rms_mm


def _sinusoid(amp_mm, lam_px, width_px, rows, *, along="x", dtype=np.float64):
    x = np.arange(width_px)
    z = np.tile(amp_mm * np.sin(2 * np.pi * x / lam_px), (rows, 1))
    return (z if along == "x" else z.T).astype(dtype)


# --- the contract ---------------------------------------------------------------------------------------------


def test_parameters_table_names_units_and_meanings_every_returned_key_in_order():
    out = areal_parameters(_rough_surface(), px_per_mm=10)
    assert list(out) == NAMES == ["Sa", "Sq", "Ssk", "Sku", "Sp", "Sv", "Sz", "Sdq", "Sdr"]
    units = {name: unit for name, unit, _ in PARAMETERS}
    assert units == {"Sa": "µm", "Sq": "µm", "Ssk": "1", "Sku": "1", "Sp": "µm", "Sv": "µm", "Sz": "µm",
                     "Sdq": "1", "Sdr": "%"}
    assert all(meaning for _, _, meaning in PARAMETERS)
    assert all(type(v) is float for v in out.values())


def test_docstring_example_runs():
    result = doctest.testmod(areal, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_input_array_is_not_modified():
    z = _rough_surface()
    z[3, 4] = np.nan
    before = z.copy()
    areal_parameters(z, px_per_mm=10, level="plane")
    np.testing.assert_array_equal(z, before)


# --- analytic known answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("along", ["x", "y"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinusoid_over_whole_periods_matches_closed_form(along, dtype):
    amp_mm, ppm, lam_px = 0.015, 20.0, 80  # 15 µm amplitude, 4 mm wavelength, 10 periods
    z = _sinusoid(amp_mm, lam_px, 10 * lam_px, 12, along=along, dtype=dtype)
    p = areal_parameters(z, px_per_mm=ppm)
    a_um = amp_mm * 1000
    exact = 1e-9 if dtype == np.float64 else 2e-6  # whole periods: these are exact up to rounding
    assert p["Sq"] == pytest.approx(a_um / math.sqrt(2), rel=exact)
    assert p["Ssk"] == pytest.approx(0.0, abs=exact)
    assert p["Sku"] == pytest.approx(1.5, rel=exact)
    assert p["Sp"] == pytest.approx(a_um, rel=exact)
    assert p["Sv"] == pytest.approx(a_um, rel=exact)
    assert p["Sz"] == pytest.approx(2 * a_um, rel=exact)
    # Sa: the mean of |sin| over n = 80 samples per period is exactly (2/n)·cot(π/n), which is 2/π to
    # within (π/n)²/3 ≈ 5e-4.
    assert p["Sa"] == pytest.approx(a_um * 2 / lam_px / math.tan(math.pi / lam_px), rel=exact)
    assert p["Sa"] == pytest.approx(2 * a_um / math.pi, rel=1e-3)
    # Sdq: forward differences shrink a sinusoid's slope by sinc(π h/λ) ≈ 1 - 2.6e-4, and the 799 differences
    # miss one sample of a whole period of cos² (≤ 1/(2·799) ≈ 6e-4): 1e-3 covers both.
    lam_mm = lam_px / ppm
    sdq_true = 2 * math.pi * amp_mm / (lam_mm * math.sqrt(2))
    assert p["Sdq"] == pytest.approx(sdq_true, rel=1e-3)
    # Sdr: the true developed area of the sinusoid, by quadrature over one period.
    k = 2 * math.pi / lam_mm
    ratio, _ = integrate.quad(lambda x: math.sqrt(1 + (amp_mm * k * math.cos(k * x)) ** 2), 0, lam_mm)
    sdr_true = 100 * (ratio / lam_mm - 1)
    assert p["Sdr"] == pytest.approx(sdr_true, rel=2e-3)


@pytest.mark.parametrize("slope_x, slope_y", [(0.05, 0.0), (0.0, 0.5), (2.0, 0.0), (0.3, -0.4)])
def test_plane_gives_its_slope_as_sdq_and_exact_developed_area(slope_x, slope_y):
    ppm = 12.5
    y, x = np.mgrid[:40, :50] / ppm  # mm
    z = 1.0 + slope_x * x + slope_y * y
    p = areal_parameters(z, px_per_mm=ppm, level="mean")  # the plane is kept, so its slope is the texture
    grad2 = slope_x**2 + slope_y**2
    assert p["Sdq"] == pytest.approx(math.sqrt(grad2), rel=1e-12)
    assert p["Sdr"] == pytest.approx(100 * (math.sqrt(1 + grad2) - 1), rel=1e-10)


@pytest.mark.parametrize("slope", [1e-4, 0.05])
def test_float32_plane_keeps_a_faint_developed_area(slope):
    # float32 maps are computed in float32: Sdr comes from the excess area sqrt(1 + s) - 1 of each triangle,
    # which for a slope of 1e-4 (s = 1e-8, below float32's resolution of 1 + s) must not round to zero.
    ppm = 12.5
    y, x = np.mgrid[:40, :50] / ppm
    z = (slope * x).astype(np.float32)
    p = areal_parameters(z, px_per_mm=ppm)
    g = float(np.diff(z, axis=1).astype(np.float64).mean() * ppm)  # the float32 plane's own slope
    assert p["Sdq"] == pytest.approx(g, rel=1e-5)
    assert p["Sdr"] == pytest.approx(100 * (math.sqrt(1 + g * g) - 1), rel=1e-4)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("offset_mm, tilt", [(0.0, 0.0), (1.0, 0.0), (20.0, 0.2)])
@pytest.mark.parametrize("masked", [False, True])
def test_a_float32_map_gives_the_parameters_of_its_float64_copy(masked, offset_mm, tilt, level):
    # A 2 µm-rough map, far from zero (a height map in absolute mm) and tilted: float32 keeps ~7 digits of the
    # 20 mm, so the mean and the plane must be found with float64 sums and the map centred twice.
    rough = (_rough_surface(shape=(600, 800), seed=9) * 0.1).astype(np.float32)
    y, x = np.mgrid[: rough.shape[0], : rough.shape[1]] / 10.0
    z = (rough + offset_mm + tilt * x - 0.5 * tilt * y).astype(np.float32)
    mask = None
    if masked:
        mask = np.ones(z.shape, bool)
        mask[30:50, 40:70] = False
    p32 = areal_parameters(z, px_per_mm=10.0, mask=mask, level=level)
    p64 = areal_parameters(z.astype(np.float64), px_per_mm=10.0, mask=mask, level=level)
    for name in NAMES:
        assert p32[name] == pytest.approx(p64[name], rel=1e-5, abs=1e-5), name


@pytest.mark.parametrize("with_holes", [False, True])
def test_tilted_plane_with_plane_levelling_has_no_roughness(with_holes):
    y, x = np.mgrid[:90, :120] / 10.0
    z = 4.0 + 0.3 * x - 0.12 * y
    mask = None
    if with_holes:
        z[10:20, 30:50] = np.nan
        mask = np.ones(z.shape, bool)
        mask[50:60, :] = False
        z[55, 7] = 99.0  # a spike under the mask must not tilt the fitted plane
    p = areal_parameters(z, px_per_mm=10, mask=mask, level="plane")
    for name in ("Sa", "Sq", "Sp", "Sv", "Sz"):
        assert abs(p[name]) < 1e-6, name  # µm; the heights themselves span ~5000 µm
    assert p["Sdq"] < 1e-9
    assert abs(p["Sdr"]) < 1e-9
    assert math.isnan(p["Ssk"]) and math.isnan(p["Sku"])


def test_plane_levelling_removes_tilt_but_keeps_the_texture():
    rough = _rough_surface(seed=3)
    y, x = np.mgrid[: rough.shape[0], : rough.shape[1]] / 10.0
    tilted = rough + 0.4 * x + 0.2 * y
    keep = areal_parameters(tilted, px_per_mm=10, level="mean")
    level = areal_parameters(tilted, px_per_mm=10, level="plane")
    ref = areal_parameters(rough, px_per_mm=10, level="plane")
    assert keep["Sdq"] > 0.4  # the tilt dominates without levelling
    for name in NAMES:
        assert level[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("value", [0.0, 3.7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flat_surface_gives_nan_skewness_and_kurtosis_without_warnings(value, dtype):
    z = np.full((20, 30), value, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = areal_parameters(z, px_per_mm=10)
    assert math.isnan(p["Ssk"]) and math.isnan(p["Sku"])
    for name in ("Sa", "Sq", "Sp", "Sv", "Sz", "Sdq", "Sdr"):
        assert p[name] == pytest.approx(0.0, abs=1e-9), name


def test_gaussian_noise_has_sq_sigma_zero_skew_kurtosis_three_and_known_slope():
    sigma_mm, ppm = 0.005, 10.0
    z = np.random.default_rng(7).normal(0.0, sigma_mm, size=(512, 512))
    p = areal_parameters(z, px_per_mm=ppm)
    n = z.size
    assert p["Sq"] == pytest.approx(sigma_mm * 1000, rel=0.01)
    assert p["Sa"] == pytest.approx(sigma_mm * 1000 * math.sqrt(2 / math.pi), rel=0.01)
    assert abs(p["Ssk"]) < 6 * math.sqrt(6 / n)  # six standard errors of the sample skewness
    assert abs(p["Sku"] - 3) < 6 * math.sqrt(24 / n)
    # White noise: a neighbour difference has variance 2σ² per direction, so Sdq = 2σ·px_per_mm.
    assert p["Sdq"] == pytest.approx(2 * sigma_mm * ppm, rel=0.01)


# --- against an independent implementation --------------------------------------------------------------------


def _surfalize_surface(z_mm, px_per_mm, invalid=None):
    surfalize = pytest.importorskip("surfalize", reason="surfalize (independent ISO 25178 code) is not installed")
    step_um = 1000.0 / px_per_mm  # surfalize takes lateral steps and heights in µm
    return surfalize.Surface(z_mm * 1000.0, step_um, step_um, mask=invalid)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed, ppm", [(0, 10.0), (1, 25.0)])
def test_matches_surfalize_on_a_random_rough_surface(level, seed, ppm):
    # Same definitions and the same discretisation (forward differences for Sdq, ISO 25178-2:2021 D.15
    # two-diagonal triangulation for Sdr), so agreement is to rounding — far inside the ~1 % one would
    # allow between different discretisations.
    z = _rough_surface(seed=seed)
    y, x = np.mgrid[: z.shape[0], : z.shape[1]] / ppm
    z = z + 0.05 * x - 0.02 * y + 2.0
    ours = areal_parameters(z, px_per_mm=ppm, level=level)
    surf = _surfalize_surface(z, ppm)
    if level == "plane":
        surf = surf.level()
    for name in NAMES:
        theirs = float(getattr(surf, name)())
        assert ours[name] == pytest.approx(theirs, rel=1e-9, abs=1e-12), name


def test_masked_height_parameters_match_surfalize():
    z = _rough_surface(seed=5)
    keep = np.ones(z.shape, bool)
    keep[40:90, 60:130] = False
    ours = areal_parameters(z, px_per_mm=10, mask=keep)
    surf = _surfalize_surface(z, 10.0, invalid=~keep)  # surfalize masks mark the pixels to *exclude*
    theirs = surf.height_parameters()  # surfalize computes Sdq/Sdr only on unmasked surfaces
    for name in ("Sa", "Sq", "Ssk", "Sku", "Sp", "Sv", "Sz"):
        assert ours[name] == pytest.approx(float(theirs[name]), rel=1e-9), name


# --- scale, masks and missing pixels --------------------------------------------------------------------------


def _smooth_field(px_per_mm, size_mm=20.0, seed=11):
    """The same continuous surface (a sum of random waves, 1–5 mm wavelengths) sampled at px_per_mm."""
    rng = np.random.default_rng(seed)
    n = int(round(size_mm * px_per_mm))
    y, x = np.mgrid[:n, :n] / px_per_mm
    z = np.zeros((n, n))
    for _ in range(12):
        lam = rng.uniform(1.0, 5.0)
        theta = rng.uniform(0, np.pi)
        kx, ky = 2 * np.pi / lam * np.cos(theta), 2 * np.pi / lam * np.sin(theta)
        z += rng.uniform(2e-3, 8e-3) * np.sin(kx * x + ky * y + rng.uniform(0, 2 * np.pi))
    return z


def test_same_surface_sampled_twice_as_finely_gives_nearly_the_same_parameters():
    coarse = areal_parameters(_smooth_field(10.0), px_per_mm=10.0)
    fine = areal_parameters(_smooth_field(20.0), px_per_mm=20.0)
    assert fine["Sq"] == pytest.approx(coarse["Sq"], rel=0.01)
    assert fine["Sa"] == pytest.approx(coarse["Sa"], rel=0.01)
    # Forward differences lose up to (π h/λ)²/6 ≈ 1.6 % of the slope of a 1 mm wave at 10 px/mm.
    assert fine["Sdq"] == pytest.approx(coarse["Sdq"], rel=0.02)
    assert fine["Sdq"] >= coarse["Sdq"]


def test_doubling_heights_doubles_heights_and_keeps_shape_parameters():
    z = _rough_surface(seed=2)
    p1 = areal_parameters(z, px_per_mm=10)
    p2 = areal_parameters(2 * z, px_per_mm=10)
    for name in ("Sa", "Sq", "Sp", "Sv", "Sz", "Sdq"):
        assert p2[name] == pytest.approx(2 * p1[name], rel=1e-9), name
    for name in ("Ssk", "Sku"):
        assert p2[name] == pytest.approx(p1[name], rel=1e-9), name


def test_px_per_mm_scales_slopes_but_not_heights():
    z = _rough_surface(seed=4)
    p1 = areal_parameters(z, px_per_mm=10)
    p2 = areal_parameters(z, px_per_mm=20)  # same heights on pixels half the size: twice as steep
    assert p2["Sq"] == p1["Sq"]
    assert p2["Sdq"] == pytest.approx(2 * p1["Sdq"], rel=1e-12)


def test_mask_excludes_a_region_with_a_big_spike():
    z = _rough_surface(seed=6)
    spiked = z.copy()
    spiked[70:80, 100:110] += 5.0  # a 5 mm spike next to ~20 µm texture
    keep = np.ones(z.shape, bool)
    keep[60:90, 90:120] = False
    clean = areal_parameters(z, px_per_mm=10, mask=keep)
    masked = areal_parameters(spiked, px_per_mm=10, mask=keep)
    unmasked = areal_parameters(spiked, px_per_mm=10)
    assert masked == clean
    assert unmasked["Sp"] > 4000 and masked["Sp"] < 200


@pytest.mark.parametrize("level", LEVELS)
def test_masking_off_columns_equals_cropping_them_away(level):
    # Gradients and cells that touch a masked pixel drop out, so a masked band is exactly a crop.
    z = _rough_surface(seed=8)
    keep = np.zeros(z.shape, bool)
    keep[:, :150] = True
    masked = areal_parameters(z, px_per_mm=10, mask=keep, level=level)
    cropped = areal_parameters(z[:, :150], px_per_mm=10, level=level)
    for name in NAMES:
        assert masked[name] == pytest.approx(cropped[name], rel=1e-9, abs=1e-12), name


def test_nan_pixels_count_as_masked_out():
    z = _rough_surface(seed=9)
    holes = np.zeros(z.shape, bool)
    holes[np.random.default_rng(9).random(z.shape) < 0.03] = True
    with_nan = np.where(holes, np.nan, z)
    p_nan = areal_parameters(with_nan, px_per_mm=10, level="plane")
    p_mask = areal_parameters(z, px_per_mm=10, mask=~holes, level="plane")
    assert p_nan == p_mask
    assert all(math.isfinite(v) for v in p_nan.values())


def test_checkerboard_mask_leaves_no_gradients_and_gives_nan_sdq_sdr():
    z = _rough_surface(seed=10, shape=(20, 20))
    keep = (np.add.outer(np.arange(20), np.arange(20)) % 2) == 0
    p = areal_parameters(z, px_per_mm=10, mask=keep)
    assert math.isnan(p["Sdq"]) and math.isnan(p["Sdr"])
    assert math.isfinite(p["Sq"])


def test_a_1000_by_1000_map_takes_well_under_a_tenth_of_a_second():
    z = _rough_surface(shape=(1000, 1000), seed=12).astype(np.float32)
    areal_parameters(z, px_per_mm=10)  # warm-up
    best = min(_timed(lambda: areal_parameters(z, px_per_mm=10)) for _ in range(5))
    assert best < 0.1, f"{best * 1000:.0f} ms"  # ~30 ms on one core; the margin absorbs busy CI machines


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- bad inputs -----------------------------------------------------------------------------------------------

_OK = np.zeros((5, 5))


@pytest.mark.parametrize(
    "height, kwargs, error, fix",
    [
        (np.zeros(25), {}, ImageError, "2-D"),
        (np.zeros((5, 5, 3)), {}, ImageError, "one channel"),
        (np.zeros((2, 40)), {}, ImageError, "at least 3×3"),
        (np.full((5, 5), np.nan), {}, ImageError, "enlarge the mask"),
        (np.where(np.eye(5, dtype=bool), 0.0, np.nan), {}, ImageError, "at least 9"),
        (np.full((5, 5), np.inf), {}, ImageError, "NaN"),
        (np.zeros((5, 5), complex), {}, ImageError, "real-valued"),
        (np.array([["a"] * 3] * 3), {}, ImageError, "real-valued"),
        (_OK, {"px_per_mm": 0}, OptionError, "> 0"),
        (_OK, {"px_per_mm": -10}, OptionError, "> 0"),
        (_OK, {"px_per_mm": float("nan")}, OptionError, "finite"),
        (_OK, {"px_per_mm": float("inf")}, OptionError, "finite"),
        (_OK, {"px_per_mm": "ten"}, OptionError, "pixels per mm"),
        (_OK, {"px_per_mm": None}, OptionError, "pixels per mm"),
        (_OK, {"mask": np.ones((4, 5), bool)}, OptionError, "same shape"),
        (_OK, {"mask": np.zeros((5, 5), bool)}, ImageError, "enlarge the mask"),
        (_OK, {"level": "median"}, OptionError, "level='plane'"),
        (_OK, {"level": None}, OptionError, "level='mean'"),
    ],
    ids=["1-D", "3-D", "too-small", "all-NaN", "too-few-valid", "inf", "complex", "strings",
         "zero-scale", "negative-scale", "nan-scale", "inf-scale", "text-scale", "no-scale",
         "mask-shape", "empty-mask", "unknown-level", "level-None"],
)
def test_bad_inputs_raise_one_sentence_that_says_the_fix(height, kwargs, error, fix):
    kwargs = {"px_per_mm": 10.0, **kwargs}
    with pytest.raises(error) as info:
        areal_parameters(height, **kwargs)
    message = str(info.value)
    assert fix in message
    assert isinstance(info.value, ValueError)  # callers that only know ValueError still catch it
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_px_per_mm_is_keyword_only():
    with pytest.raises(TypeError):
        areal_parameters(_OK, 10.0)  # type: ignore[misc]


def test_a_mask_that_trims_the_borders_gives_the_parameters_of_the_cropped_map():
    # the analysis masks a frame along the borders: the result must be that of the map inside it alone
    rng = np.random.default_rng(11)
    z = rng.standard_normal((120, 90)) * 0.01
    mask = np.zeros(z.shape, bool)
    mask[7:113, 5:80] = True
    paths = []
    hybrid = areal._hybrid
    areal._hybrid = lambda zz, rate, all_valid: paths.append(all_valid) or hybrid(zz, rate, all_valid)
    try:
        got = areal_parameters(z, px_per_mm=10.0, mask=mask)
    finally:
        areal._hybrid = hybrid
    assert paths == [True]  # cropped to the frame: the plain sums, not the NaN-aware ones
    want = areal_parameters(z[7:113, 5:80], px_per_mm=10.0)
    for name in got:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name
    # a hole inside the frame still counts as missing
    mask[50:60, 40:50] = False
    holed = areal_parameters(z, px_per_mm=10.0, mask=mask)
    assert holed["Sq"] != pytest.approx(got["Sq"], rel=1e-9)
