"""analyzer.colour: sRGB transfer function and the pigment/shading separation, against images built from known
shading and pigment maps with the *renderer's* pigment vectors (which differ from colour's priors on purpose)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from analyzer import colour, filters, synth

PX_PER_MM = 10.0
SHAPE = (240, 320)


def srgb_to_linear(v):
    """IEC 61966-2-1, written out here (float64) so the tests do not lean on the code under test."""
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


@pytest.mark.parametrize("srgb, linear", [(0.0, 0.0), (1.0, 1.0), (0.5, 0.2140), (0.04045, 0.04045 / 12.92),
                                          (0.2, 0.0331), (0.8, 0.6038)])
def test_linearise_gives_the_standard_values(srgb, linear):
    assert float(colour.linearise(np.float32(srgb))) == pytest.approx(linear, abs=1e-4)


def test_linearise_keeps_shape_and_gives_float32():
    out = colour.linearise(np.zeros((4, 5, 3), np.uint8).astype(np.float32) + 0.5)
    assert out.shape == (4, 5, 3) and out.dtype == np.float32


def test_encode_srgb_inverts_linearise_over_the_whole_range():
    v = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    assert np.max(np.abs(colour.encode_srgb(colour.linearise(v)) - v)) < 1e-5
    assert np.max(np.abs(colour.linearise(colour.encode_srgb(v)) - v)) < 1e-5


def test_encode_srgb_clips_out_of_range_light():
    assert colour.encode_srgb(np.array([-0.5, 2.0], np.float32)) == pytest.approx([0.0, 1.0], abs=1e-6)


def test_log_rgb_equals_log_of_linearise_including_dark_values():
    v = np.concatenate([np.linspace(0.0, 1.0, 4097), np.linspace(0.03, 0.05, 401), [1 / 255, 2 / 255, 1e-6]])
    v = v.astype(np.float32).reshape(1, -1, 1).repeat(3, axis=2)
    expected = np.log(np.maximum(srgb_to_linear(v), colour.LOG_FLOOR))
    got = colour.log_rgb(v)
    assert got.dtype == np.float32 and got.shape == v.shape
    assert np.max(np.abs(got - expected)) < 1e-5


def test_log_rgb_floors_black_instead_of_minus_infinity():
    out = colour.log_rgb(np.zeros((2, 2, 3), np.float32))
    assert np.all(np.isfinite(out))
    assert np.allclose(out, np.log(colour.LOG_FLOOR))


# --------------------------------------------------------------------------------------------- separation
def smooth_field(rng, scale_mm: float, sd: float) -> np.ndarray:
    noise = rng.standard_normal(SHAPE).astype(np.float32)
    f = filters.gaussian(noise, scale_mm * PX_PER_MM / 2.5)
    return (f / f.std() * sd).astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    """Log-shading and pigment maps, independent random fields (fine + coarse), and the linear-light image
    ``gain * albedo(melanin, haemoglobin) * exp(shading)`` with the renderer's Beer-Lambert albedo."""
    rng = np.random.default_rng(7)
    shading = smooth_field(rng, 1.0, 0.08) + smooth_field(rng, 8.0, 0.1)
    melanin = 0.4 + smooth_field(rng, 2.0, 0.12) + smooth_field(rng, 10.0, 0.1)
    haemoglobin = 0.3 + smooth_field(rng, 1.5, 0.1) + smooth_field(rng, 6.0, 0.1)
    linear = 0.5 * synth.albedo(melanin, haemoglobin) * np.exp(shading)[..., None]
    assert synth.MELANIN_OD.tolist() != colour.MELANIN_OD.tolist()  # the analyser must not know the renderer's
    return {"shading": shading, "melanin": melanin, "haemoglobin": haemoglobin, "linear": linear}


def highpass(x: np.ndarray) -> np.ndarray:
    """Remove structures above 5 mm (what separate() leaves to the band-pass) and a 2 mm rim."""
    x = x.astype(np.float32)
    out = x - filters.gaussian(x, filters.size_to_sigma_px(5.0, PX_PER_MM))
    return out[20:-20, 20:-20]


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def separate(linear, **kw):
    return colour.separate(colour.encode_srgb(linear), px_per_mm=PX_PER_MM, **kw)


def test_separated_shading_follows_the_true_log_shading(scene):
    sep = separate(scene["linear"])
    assert sep.shading.shape == SHAPE and sep.shading.dtype == np.float32
    assert corr(highpass(sep.shading), highpass(scene["shading"])) > 0.98


def test_separated_shading_is_not_the_plain_brightness(scene):
    # Without the pigment correction the achromatic channel also carries the melanin and haemoglobin maps.
    plain = np.log(scene["linear"]).mean(axis=-1)
    sep = separate(scene["linear"])
    assert corr(highpass(plain), highpass(scene["shading"])) < 0.9
    assert corr(highpass(sep.shading), highpass(scene["shading"])) > corr(highpass(plain), highpass(scene["shading"]))


def test_pigment_maps_follow_the_true_melanin_and_haemoglobin(scene):
    sep = separate(scene["linear"])
    assert corr(sep.melanin, scene["melanin"]) > 0.9
    assert corr(sep.haemoglobin, scene["haemoglobin"]) > 0.9
    # and each map is its own pigment, not the other one
    assert abs(corr(sep.melanin, scene["haemoglobin"])) < 0.5
    assert abs(corr(sep.haemoglobin, scene["melanin"])) < 0.5


def test_pigment_maps_do_not_carry_the_shading(scene):
    sep = separate(scene["linear"])
    assert abs(corr(highpass(sep.melanin), highpass(scene["shading"]))) < 0.2
    assert abs(corr(highpass(sep.haemoglobin), highpass(scene["shading"]))) < 0.2


@pytest.mark.parametrize("white_balance, exposure", [((1.1, 1.0, 0.9), 1.0), ((1.0, 1.0, 1.0), 0.7),
                                                     ((1.0, 1.0, 1.0), 1.3), ((0.9, 1.05, 1.15), 0.8)],
                         ids=["wb-warm", "exposure0.7", "exposure1.3", "wb-cool-dark"])
def test_white_balance_and_exposure_shift_the_shading_by_a_constant(scene, white_balance, exposure):
    ref = separate(scene["linear"]).shading
    cast = scene["linear"] * np.asarray(white_balance) * exposure
    assert cast.max() < 1.0  # no clipping: the claim is about gains only
    sh = separate(cast).shading
    diff = (sh - sh.mean()) - (ref - ref.mean())
    assert np.max(np.abs(diff)) < 1e-4
    assert abs(float(np.mean(sh - ref))) > 1e-3 or exposure == 1.0  # the constant itself does move


def test_masked_out_pixels_do_not_bias_the_leak_estimate(scene):
    ref = separate(scene["linear"])
    spoiled = scene["linear"].copy()
    spoiled[60:140, 80:200] = (0.02, 0.6, 0.02)  # a saturated green sticker
    mask = np.ones(SHAPE, bool)
    mask[50:150, 70:210] = False
    sep = separate(spoiled, mask=mask)
    assert np.allclose(sep.leak, ref.leak, atol=0.05)
    unmasked = separate(spoiled)
    assert not np.allclose(unmasked.leak, ref.leak, atol=0.05)  # the mask is what protected the estimate


# ------------------------------------------------------------------------------ colour inside the scars
def lambert_log_shading(height_mm: np.ndarray, *, azimuth_deg=135.0, zenith_deg=45.0, ambient=0.2) -> np.ndarray:
    """Log irradiance of a Lambertian relief under one lamp (the renderer's model, written out here)."""
    gy, gx = np.gradient(height_mm, 1.0 / PX_PER_MM)
    phi, th = np.radians(azimuth_deg), np.radians(zenith_deg)
    lx, ly, lz = np.sin(th) * np.cos(phi), -np.sin(th) * np.sin(phi), np.cos(th)
    ndotl = (lz - gx * lx - gy * ly) / np.sqrt(1 + gx * gx + gy * gy)
    return np.log(ambient + (1 - ambient) / lz * np.maximum(ndotl, 0.0)).astype(np.float32)


@pytest.fixture(scope="module")
def pits():
    """A field of pits and their profile (0-1): wide dishes (raised cosine, 2-4 mm, 0.1-0.3 mm deep) and narrow
    steep cones (0.8-1.2 mm, 0.3-0.5 mm deep), slightly blurred as by a lens."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]] / PX_PER_MM
    height, profile = np.zeros(SHAPE), np.zeros(SHAPE)
    for i in range(50):
        cx, cy = rng.uniform(2, SHAPE[1] / PX_PER_MM - 2), rng.uniform(2, SHAPE[0] / PX_PER_MM - 2)
        if i % 2:
            radius, depth = rng.uniform(1.0, 2.0), rng.uniform(0.1, 0.3)
            p = 0.5 * (1 + np.cos(np.pi * np.minimum(np.hypot(xx - cx, yy - cy) / radius, 1.0)))
        else:
            radius, depth = rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.5)
            p = np.clip(1.0 - np.hypot(xx - cx, yy - cy) / radius, 0.0, None)
        height = np.minimum(height, -depth * p)
        profile = np.maximum(profile, p)
    height = filters.gaussian(height.astype(np.float32), 0.7)
    return {"shading": lambert_log_shading(height), "profile": profile.astype(np.float32)}


@pytest.mark.parametrize("amount", [0.6, 1.2])
@pytest.mark.parametrize("pigment", ["haemoglobin", "melanin"])
def test_colour_inside_the_pits_is_not_taken_for_relief(scene, pits, pigment, amount):
    # The same pits, plain and coloured in proportion to their own depth profile (red: post-inflammatory
    # erythema; brown: hyperpigmentation). The pit's own darkening (Lambert's law is not linear in the slope)
    # sits exactly where the colour is; the leak estimate must not absorb it, and the relief must read the same.
    mel, hb = scene["melanin"], scene["haemoglobin"]
    plain = 0.5 * synth.albedo(mel, hb) * np.exp(pits["shading"])[..., None]
    extra = amount * pits["profile"]
    coloured = 0.5 * synth.albedo(mel + extra * (pigment == "melanin"), hb + extra * (pigment == "haemoglobin")) \
        * np.exp(pits["shading"])[..., None]
    sp, sc = separate(plain), separate(coloured)
    true_k = np.linalg.solve(-np.stack([synth.MELANIN_OD, synth.HAEMOGLOBIN_OD]) @ colour._CHROMA.T,
                             -np.stack([synth.MELANIN_OD, synth.HAEMOGLOBIN_OD]) @ colour._ACHRO)
    assert np.allclose(sc.leak, true_k, atol=0.03), (sc.leak, true_k)  # the physical leak, not the pit's shade
    rms_plain, rms_coloured = (float(np.std(highpass(s.shading))) for s in (sp, sc))
    assert rms_coloured == pytest.approx(rms_plain, rel=0.01)
    assert corr(highpass(sc.shading), highpass(pits["shading"])) > 0.98


def test_large_photos_estimate_the_leak_on_a_reduced_grid_with_the_same_result(scene, pits, monkeypatch):
    # Red pits at twice the resolution: 480 x 640 px at 20 px/mm is reduced 2x for the estimate.
    up = (SHAPE[1] * 2, SHAPE[0] * 2)
    red = 0.5 * synth.albedo(scene["melanin"], scene["haemoglobin"] + 0.6 * pits["profile"]) \
        * np.exp(pits["shading"])[..., None]
    big = np.stack([cv2.resize(red[..., c].astype(np.float32), up, interpolation=cv2.INTER_CUBIC)
                    for c in range(3)], -1)
    srgb = colour.encode_srgb(np.clip(big, 1e-4, 1.0))
    reduced = colour.separate(srgb, px_per_mm=2 * PX_PER_MM)
    monkeypatch.setattr(colour, "_REGRESSION_SAMPLES", 10**9)  # no reduction
    full = colour.separate(srgb, px_per_mm=2 * PX_PER_MM)
    assert np.allclose(reduced.leak, full.leak, atol=0.02), (reduced.leak, full.leak)
    assert np.max(np.abs(reduced.shading - full.shading)) < 0.02


def test_chroma_finer_than_the_photos_own_pixels_stays_out_of_the_shading(scene):
    # Chroma noise at the scale of a few file pixels (JPEG's quantised 4:2:0 chroma, demosaicing) on freckled skin:
    # where a pigment pattern is, k·chroma is subtracted from the shading, and with it that noise. Smoothed over
    # the photo's own pixels (here a photo of 15 px/mm on the 10 px/mm grid) the noise stays out; the
    # pigment itself is still removed.
    rng = np.random.default_rng(11)
    noise = np.stack([filters.gaussian(rng.standard_normal(SHAPE).astype(np.float32), 1.0) for _ in range(2)], -1)
    chroma_noise = np.float32(0.03) * noise / noise.std()
    tint = np.stack([chroma_noise[..., 0], -chroma_noise[..., 0] + chroma_noise[..., 1], -chroma_noise[..., 1]], -1)
    noisy = scene["linear"] * np.exp(tint)  # log-chroma only: the achromatic mean of the three is unchanged
    assert colour.chroma_sigma_mm(None) == 0.0 and colour.chroma_sigma_mm(4.0) == pytest.approx(3.5 / 4.0)
    raw = separate(noisy)
    smoothed = separate(noisy, chroma_sigma_mm=colour.chroma_sigma_mm(15.0))
    truth = highpass(scene["shading"])
    err_raw = float(np.std(highpass(raw.shading) - truth))
    err_smoothed = float(np.std(highpass(smoothed.shading) - truth))
    assert err_smoothed < 0.6 * err_raw, (err_smoothed, err_raw)
    assert corr(highpass(smoothed.shading), truth) > 0.95


def test_an_impossible_chroma_smoothing_is_refused_with_the_fix(scene):
    from analyzer.errors import OptionError

    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(OptionError, match="chroma_sigma_mm must be a finite"):
            separate(scene["linear"], chroma_sigma_mm=bad)
    assert colour.chroma_sigma_mm(0.0) == colour.chroma_sigma_mm(float("nan")) == colour.chroma_sigma_mm(-3.0) == 0.0
