"""analyzer.filters and analyzer.relief: band-pass filters in physical units, the analysis grid, the light's
azimuth, and the directional integration of shading slopes into a height proxy — against known answers and
skins rendered by analyzer.synth with a known lamp."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analyzer import colour, filters, relief
from analyzer.loading import as_rgb


# ------------------------------------------------------------------------------------------------- filters
def test_size_to_sigma_px_is_diameter_over_two_root_two_in_pixels():
    assert filters.size_to_sigma_px(2.0, 10.0) == pytest.approx(2.0 / (2 * math.sqrt(2)) * 10.0, rel=1e-12)
    assert filters.size_to_sigma_px(5.0, 4.0) == pytest.approx(7.0710678, rel=1e-7)


@pytest.mark.parametrize("masked", [False, True])
def test_band_pass_of_a_constant_is_zero(masked):
    img = np.full((200, 300), 0.37, np.float32)
    mask = None
    if masked:
        mask = np.ones(img.shape, bool)
        mask[50:90, 100:180] = False
    out = filters.band_pass(img, px_per_mm=10.0, min_mm=0.5, max_mm=5.0, mask=mask)
    assert out.shape == img.shape
    keep = np.ones(img.shape, bool) if mask is None else mask  # masked-out pixels are undefined
    assert np.max(np.abs(out[keep])) < 1e-5


@pytest.mark.parametrize("max_mm", [5.0, 20.0])  # 20 mm takes the reduced-copy (pyramid) path of the blur
def test_band_pass_of_a_linear_ramp_is_zero_away_from_the_borders(max_mm):
    h, w, p = 600, 800, 10.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 0.01 * xx - 0.02 * yy
    out = filters.band_pass(ramp, px_per_mm=p, min_mm=0.5, max_mm=max_mm)
    m = int(math.ceil(3 * filters.size_to_sigma_px(max_mm, p)))
    inner = out[m:h - m, m:w - m]
    assert inner.size > 0
    # the ramp spans 20 units; what a band-pass leaves of it must be tiny
    assert np.max(np.abs(inner)) < 1e-3


def test_band_pass_keeps_a_blob_inside_its_band_and_drops_one_outside():
    h, w, p = 256, 256, 10.0
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = (xx - 128.0) ** 2 + (yy - 128.0) ** 2

    def blob(d_mm):  # Gaussian blob whose LoG scale is d_mm
        s = filters.size_to_sigma_px(d_mm, p)
        return np.exp(-r2 / (2 * s * s)).astype(np.float32)

    inside = filters.band_pass(blob(2.0), px_per_mm=p, min_mm=0.5, max_mm=5.0)
    outside = filters.band_pass(blob(20.0), px_per_mm=p, min_mm=0.5, max_mm=5.0)
    assert inside[128, 128] > 0.3
    assert abs(outside[128, 128]) < 0.1


@pytest.mark.parametrize("sigma_px", [2.0, 25.0])
def test_masked_gaussian_ignores_a_huge_spike_under_the_mask(sigma_px):
    img = np.ones((200, 200), np.float32)
    img[95:105, 95:105] = 1e6
    mask = np.ones(img.shape, bool)
    mask[95:105, 95:105] = False
    out = filters.gaussian(img, sigma_px, mask=mask)
    assert np.max(np.abs(out - 1.0)) < 1e-3
    leaky = filters.gaussian(img, sigma_px)  # without the mask the spike spreads
    assert leaky[100, 100 + int(2 * sigma_px)] > 10.0


def test_gaussian_with_a_tiny_sigma_returns_a_copy():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = filters.gaussian(img, 0.1)
    assert np.array_equal(out, img) and out is not img


# ------------------------------------------------------------------------------------------- analysis grid
def test_to_analysis_grid_reduces_fine_photos_and_reports_the_exact_scale():
    rgb = np.zeros((600, 1000, 3), np.float32)
    out, p = relief.to_analysis_grid(rgb, px_per_mm=33.0)
    assert out.shape == (round(600 * 10 / 33), round(1000 * 10 / 33), 3)
    assert p == pytest.approx(33.0 * out.shape[1] / 1000, rel=1e-12)
    # the width in mm is unchanged by the resampling
    assert out.shape[1] / p == pytest.approx(1000 / 33.0, rel=1e-12)


@pytest.mark.parametrize("px_per_mm", [10.0, 7.0, 2.5])
def test_to_analysis_grid_never_upsamples(px_per_mm):
    rgb = np.random.default_rng(0).random((300, 400, 3)).astype(np.float32)
    out, p = relief.to_analysis_grid(rgb, px_per_mm=px_per_mm)
    assert out is rgb and p == px_per_mm


def test_to_analysis_grid_averages_areas():
    rgb = np.random.default_rng(1).random((300, 450)).astype(np.float32)
    out, p = relief.to_analysis_grid(rgb, px_per_mm=30.0)
    assert p == 10.0
    # a factor of exactly 3: each grid pixel is the mean of its 3 x 3 block (no aliasing, no shift)
    assert np.allclose(out, rgb.reshape(100, 3, 150, 3).mean(axis=(1, 3)), atol=1e-5)


def test_robust_std_matches_the_standard_deviation_of_normal_data_despite_outliers():
    x = np.random.default_rng(3).normal(0.0, 2.0, 200_000)
    x[:2000] = 1e3  # 1 % outliers
    assert relief.robust_std(x) == pytest.approx(2.0, rel=0.03)
    assert math.isnan(relief.robust_std(np.array([])))


# ---------------------------------------------------------------------------------------- light azimuth
def shading_on_grid(photo: np.ndarray, px_per_mm: float):
    grid, gp = relief.to_analysis_grid(as_rgb(photo), px_per_mm=px_per_mm)
    return colour.separate(grid, px_per_mm=gp).shading, gp


def angle_mod(a: float, b: float, period: float) -> float:
    d = (a - b) % period
    return min(d, period - d)


@pytest.fixture(scope="module")
def skin_scarred(skin_make):
    return skin_make(1, 0.8)


@pytest.mark.parametrize("azimuth", [0.0, 45.0, 135.0, 200.0, 300.0])
def test_light_azimuth_axis_and_sign_are_recovered(skin_scarred, skin_photo, skin_small_capture, azimuth):
    cap = dataclasses.replace(skin_small_capture, light_azimuth_deg=azimuth)
    shading, gp = shading_on_grid(skin_photo(skin_scarred, cap), cap.px_per_mm)
    maps = relief.relief_maps(shading, px_per_mm=gp)
    axis, aniso = relief.light_azimuth(sum(maps.slope.values()), mask=maps.mask)
    assert 0.0 <= axis < 180.0
    assert angle_mod(axis, azimuth, 180.0) <= 10.0
    assert aniso > 0.2
    # relief_maps picks the sign that makes the (pit-dominated) relief skew negative
    assert 0.0 <= maps.light_azimuth_deg < 360.0
    assert angle_mod(maps.light_azimuth_deg, azimuth, 360.0) <= 20.0
    assert maps.integrated_along_deg == maps.light_azimuth_deg


def test_rotated_camera_moves_the_light_with_the_photo(skin_scarred, skin_photo, skin_small_capture):
    cap = dataclasses.replace(skin_small_capture, rotation_deg=25.0)
    shading, gp = shading_on_grid(skin_photo(skin_scarred, cap), cap.px_per_mm)
    maps = relief.relief_maps(shading, px_per_mm=gp)
    assert angle_mod(maps.light_azimuth_deg, cap.photo_light_azimuth_deg, 360.0) <= 20.0


def test_frontal_light_has_much_less_anisotropy_than_oblique_light(skin_scarred, skin_photo, skin_small_capture):
    aniso = {}
    for zenith in (0.0, 45.0):
        cap = dataclasses.replace(skin_small_capture, light_zenith_deg=zenith)
        shading, gp = shading_on_grid(skin_photo(skin_scarred, cap), cap.px_per_mm)
        aniso[zenith] = relief.relief_maps(shading, px_per_mm=gp).light_anisotropy
    assert aniso[45.0] > 0.25
    assert aniso[0.0] < 0.1
    assert aniso[0.0] < 0.3 * aniso[45.0]


def test_light_azimuth_of_a_pure_directional_derivative():
    # a random isotropic field differentiated along 30 degrees (row axis points down)
    rng = np.random.default_rng(5)
    field = filters.gaussian(rng.standard_normal((300, 300)).astype(np.float32), 3.0)
    gy, gx = np.gradient(field)
    a = math.radians(30.0)
    slope = (math.cos(a) * gx - math.sin(a) * gy).astype(np.float32)
    axis, aniso = relief.light_azimuth(slope)
    assert angle_mod(axis, 30.0, 180.0) < 3.0
    assert aniso > 0.3


# ----------------------------------------------------------------------------------- directional integration
def gaussian_pit(n=256, p=10.0, sigma_mm=1.0, depth_mm=0.1):
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    c, s = (n - 1) / 2, sigma_mm * p
    h = -depth_mm * np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * s * s))
    dh_dx = h * (-(xx - c) / (s * s)) * p  # per mm
    dh_drow = h * (-(yy - c) / (s * s)) * p
    return h, dh_dx, dh_drow


@pytest.mark.parametrize("azimuth", [0.0, 45.0, 135.0, 200.0])
@pytest.mark.parametrize("sigma_mm", [0.5, 1.0])
def test_integrate_slope_recovers_a_gaussian_pit_from_its_directional_derivative(azimuth, sigma_mm):
    p, t = 10.0, 0.8
    h, dh_dx, dh_drow = gaussian_pit(p=p, sigma_mm=sigma_mm)
    a = math.radians(azimuth)
    # shading = -t * dh/dd, d = (cos a, sin a) with y up, i.e. minus the row derivative
    slope = (-t * (math.cos(a) * dh_dx - math.sin(a) * dh_drow)).astype(np.float32)
    est = relief.integrate_slope(slope, px_per_mm=p, azimuth_deg=azimuth, tan_zenith=t)
    assert est.shape == slope.shape and est.dtype == np.float32
    assert np.corrcoef(est.ravel(), h.ravel())[0, 1] > 0.9
    depth = -float(est[128, 128])
    # the regularisation (it damps frequencies across the light) loses some depth, but not much
    assert 0.65 * 0.1 <= depth <= 1.0 * 0.1
    # integrating along the opposite azimuth negates the height
    flipped = relief.integrate_slope(slope, px_per_mm=p, azimuth_deg=azimuth + 180.0, tan_zenith=t)
    assert np.allclose(flipped, -est, atol=1e-6)


def test_integrated_height_scales_with_one_over_tan_zenith_and_px_per_mm():
    h, dh_dx, _ = gaussian_pit()
    slope = (-dh_dx).astype(np.float32)
    e1 = relief.integrate_slope(slope, px_per_mm=10.0, azimuth_deg=0.0, tan_zenith=1.0)
    e2 = relief.integrate_slope(slope, px_per_mm=10.0, azimuth_deg=0.0, tan_zenith=2.0)
    assert np.allclose(e2, e1 / 2, atol=1e-7)


def test_less_regularisation_recovers_more_depth():
    h, dh_dx, dh_drow = gaussian_pit()
    slope = (-dh_dx).astype(np.float32)
    strong = relief.integrate_slope(slope, px_per_mm=10.0, azimuth_deg=0.0, eps=0.5)
    weak = relief.integrate_slope(slope, px_per_mm=10.0, azimuth_deg=0.0, eps=0.1)
    assert -weak[128, 128] > -strong[128, 128]


# --------------------------------------------------------------------------------------------- relief maps
def test_relief_maps_bands_masks_and_imposed_azimuth(skin_scarred, skin_photo, skin_small_capture):
    shading, gp = shading_on_grid(skin_photo(skin_scarred, skin_small_capture), skin_small_capture.px_per_mm)
    maps = relief.relief_maps(shading, px_per_mm=gp)
    assert set(maps.slope) == set(maps.height) == {"fine", "scar"}
    assert maps.px_per_mm == gp
    assert maps.mask.shape == shading.shape and maps.mask.dtype == bool
    assert not maps.mask[0].any() and not maps.mask[:, -1].any()  # borders are left out
    assert maps.mask.mean() > 0.3
    # the relief of pits: negative skew of the height proxy with the estimated sign
    hv = maps.height["scar"][maps.mask]
    assert np.mean((hv - hv.mean()) ** 3) < 0
    # imposing the opposite azimuth integrates the other way: the same maps, negated
    other = relief.relief_maps(shading, px_per_mm=gp, azimuth_deg=(maps.light_azimuth_deg + 180.0) % 360.0)
    assert other.light_azimuth_deg == maps.light_azimuth_deg  # the estimate is the photo's own
    assert other.integrated_along_deg == pytest.approx((maps.light_azimuth_deg + 180.0) % 360.0)
    assert np.allclose(other.height["scar"], -maps.height["scar"], atol=1e-6)
    assert np.array_equal(other.slope["scar"], maps.slope["scar"])


def test_invalid_pixels_are_outside_the_measured_mask(skin_scarred, skin_photo, skin_small_capture):
    shading, gp = shading_on_grid(skin_photo(skin_scarred, skin_small_capture), skin_small_capture.px_per_mm)
    valid = np.ones(shading.shape, bool)
    valid[80:120, 100:160] = False
    maps = relief.relief_maps(shading, px_per_mm=gp, valid=valid)
    assert not maps.mask[80:120, 100:160].any()
    assert maps.mask.sum() < relief.relief_maps(shading, px_per_mm=gp).mask.sum()
