"""Tests for analyzer.registration: known similarity transforms recovered from skin-like photos.

The scenes are built here (not with analyzer.synth) so the test owns its ground truth: a "world" skin patch
(pores, scars, band-limited micro-relief, freckles, a redness patch), shaded by a directional light, is
photographed twice — the baseline by an axis-aligned crop, the follow-up through a known similarity
(camera shift, rotation, zoom) with a different exposure, white balance, light direction, a shading gradient,
faded freckles, more redness and fresh sensor noise.
"""
from __future__ import annotations

import functools
import json
import math

import cv2
import numpy as np
import pytest

from analyzer.errors import ImageError, OptionError
from analyzer.registration import FAIL_MESSAGE, Registration, register, warp_to

PX_PER_MM = 10.0          # world and baseline scale
FIXED_SHAPE = (480, 640)  # baseline photo (H, W): 48 x 64 mm


# --------------------------------------------------------------------------------------------------
# scene
# --------------------------------------------------------------------------------------------------

def _spots(rng, shape, density_per_mm2, sigma_px_range, px_per_mm):
    """Sum of Gaussian spots of random size at random places (unit peak), by impulse + blur per size class."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    n = int(density_per_mm2 * h * w / px_per_mm ** 2)
    lo, hi = sigma_px_range
    sigmas = np.geomspace(lo, hi, 4)
    for s in sigmas:
        imp = np.zeros(shape, np.float32)
        k = n // len(sigmas)
        ys = rng.integers(0, h, k)
        xs = rng.integers(0, w, k)
        np.add.at(imp, (ys, xs), rng.uniform(0.5, 1.0, k).astype(np.float32))
        out += cv2.GaussianBlur(imp, (0, 0), float(s)) * (2 * math.pi * s * s)
    return out


@functools.lru_cache(maxsize=8)
def make_world(seed: int, shape=(1100, 1300)):
    """Skin patch at PX_PER_MM: height map (mm) and pigment maps, all float32 (H, W)."""
    rng = np.random.default_rng(seed)
    # micro-relief: band-limited noise (0.2-1 mm)
    noise = rng.standard_normal(shape).astype(np.float32)
    micro = cv2.GaussianBlur(noise, (0, 0), 1.5) - cv2.GaussianBlur(noise, (0, 0), 6.0)
    micro *= 0.02 / micro.std()
    pores = _spots(rng, shape, 2.0, (0.7, 1.6), PX_PER_MM)                 # ~0.1-0.3 mm pores
    scars = _spots(rng, shape, 0.02, (4.0, 9.0), PX_PER_MM)                # 1-2 mm atrophic pits
    height = micro - 0.03 * pores - 0.15 * scars
    freckles = np.clip(_spots(rng, shape, 0.05, (2.0, 6.0), PX_PER_MM), 0, 1.5)
    coarse = rng.standard_normal((shape[0] // 10, shape[1] // 10)).astype(np.float32)
    red = cv2.resize(cv2.GaussianBlur(coarse, (0, 0), 6.0), shape[::-1], interpolation=cv2.INTER_CUBIC)
    red = np.clip(red / (red.std() + 1e-9), -2, 2)                         # ~1 cm redness patches
    return {"height": height, "freckles": freckles, "red": red}


def _shade(height_mm, azimuth_deg, elevation_deg=45.0):
    gy, gx = np.gradient(height_mm * PX_PER_MM)  # slopes (dimensionless)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    l = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
    n = np.sqrt(gx * gx + gy * gy + 1)
    return np.clip((-gx * l[0] - gy * l[1] + l[2]) / n, 0, None) / l[2]


def render_world_rgb(world, *, azimuth_deg, freckle_strength, redness):
    """RGB radiance of the world patch under one light (linear-ish, about 0.1-0.8).

    Pits are also darkened regardless of the light (cavities catch less light), as pores look in photos.
    """
    cavity = np.exp(8.0 * np.minimum(world["height"] - cv2.GaussianBlur(world["height"], (0, 0), 5.0), 0))
    shade = _shade(world["height"], azimuth_deg) * cavity
    base = np.array([0.78, 0.58, 0.48], np.float32)
    melanin = np.exp(-freckle_strength * world["freckles"][..., None] * np.array([0.5, 0.8, 1.0], np.float32))
    haem = np.exp(-redness * (0.5 + 0.25 * world["red"])[..., None] * np.array([0.05, 0.35, 0.2], np.float32))
    return (base * melanin * haem * shade[..., None]).astype(np.float32)


def world_to_fixed(offset):
    """2x3 map fixed pixel -> world pixel (a crop at offset (x0, y0))."""
    return np.array([[1.0, 0, offset[0]], [0, 1.0, offset[1]]])


def similarity(scale, rot_deg, tx, ty, centre):
    """2x3 map moving pixel -> fixed pixel: rotate/scale about `centre` (fixed px), then shift."""
    a = math.radians(rot_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(centre, float)
    t = c - r @ c + np.array([tx, ty])
    return np.hstack([r, t[:, None]])


def _compose(a, b):
    """a ∘ b for 2x3 affine maps."""
    ha, hb = np.eye(3), np.eye(3)
    ha[:2], hb[:2] = a, b
    return (ha @ hb)[:2]


def make_pair(seed=1, *, scale=1.1, rot_deg=10.0, shift=(40.0, 0.0), moving_shape=FIXED_SHAPE,
              rgb=True, other_seed=None, follow_azimuth_deg=220.0):
    """(fixed, moving, truth): truth maps moving px -> fixed px.

    The follow-up differs by exposure x0.7, white balance, a left-right shading gradient, the light
    turned by 20 degrees (by default), freckles faded to 40 %, more redness and fresh noise.
    """
    world = make_world(seed)
    wh, ww = world["height"].shape
    offset = ((ww - FIXED_SHAPE[1]) / 2, (wh - FIXED_SHAPE[0]) / 2)
    centre = ((FIXED_SHAPE[1] - 1) / 2, (FIXED_SHAPE[0] - 1) / 2)
    truth = similarity(scale, rot_deg, shift[0], shift[1], centre)
    rng = np.random.default_rng(seed + 1000)

    base = render_world_rgb(world, azimuth_deg=200.0, freckle_strength=1.0, redness=1.0)
    fixed = cv2.warpAffine(base, world_to_fixed(offset), FIXED_SHAPE[::-1],
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    fixed = np.clip(fixed + rng.normal(0, 0.01, fixed.shape), 0, 1).astype(np.float32)

    world2 = make_world(other_seed) if other_seed is not None else world
    follow = render_world_rgb(world2, azimuth_deg=follow_azimuth_deg, freckle_strength=0.4, redness=1.8)
    if scale > 1:  # the follow-up sees the world coarser: low-pass against aliasing
        follow = cv2.GaussianBlur(follow, (0, 0), 0.5 * math.sqrt(scale * scale - 1))
    to_world = _compose(world_to_fixed(offset), truth)   # moving px -> world px
    hm, wm = moving_shape
    moving = cv2.warpAffine(follow, to_world, (wm, hm), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    ramp = np.linspace(0.75, 1.15, wm, dtype=np.float32)[None, :, None]
    wb = np.array([0.9, 1.0, 1.2], np.float32)
    moving = moving * 0.7 * ramp * wb
    moving = np.clip(moving + rng.normal(0, 0.01, moving.shape), 0, 1).astype(np.float32)
    if not rgb:
        fixed = fixed.mean(axis=2) * 180.0 + 20.0      # gray in an arbitrary range
        moving = moving.mean(axis=2) * 3.0
    return fixed, moving, truth


def max_point_error(m_est, m_true, moving_shape, fixed_shape=None):
    """Largest distance (fixed px) between the two maps over moving-image points that land in the fixed image."""
    h, w = moving_shape[:2]
    ys, xs = np.mgrid[0:h:8, 0:w:8]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    true = m_true @ pts
    if fixed_shape is not None:
        fh, fw = fixed_shape[:2]
        inside = (true[0] >= 0) & (true[0] <= fw - 1) & (true[1] >= 0) & (true[1] <= fh - 1)
        pts, true = pts[:, inside], true[:, inside]
    return float(np.max(np.linalg.norm(np.asarray(m_est) @ pts - true, axis=0)))


def true_scale_rotation(m):
    return math.hypot(m[0, 0], m[1, 0]), math.degrees(math.atan2(m[1, 0], m[0, 0]))


def geometric_overlap(fixed_shape, moving_shape, m):
    """Fraction of fixed pixel centres whose pre-image lies inside the moving image (independent of cv2)."""
    fh, fw = fixed_shape[:2]
    mh, mw = moving_shape[:2]
    hm = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(hm)[:2]
    ys, xs = np.mgrid[0:fh, 0:fw]
    x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (x >= 0) & (x <= mw - 1) & (y >= 0) & (y <= mh - 1)
    return inside, float(inside.mean())


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------

TRANSFORMS = [
    # seed, scale, rotation (deg), shift (px), rgb
    pytest.param(1, 1.10, 10.0, (40.0, 0.0), True, id="zoom1.1-rot10-shift40-rgb"),
    pytest.param(2, 0.85, -15.0, (-30.0, 25.0), True, id="zoom0.85-rot-15-rgb"),
    pytest.param(3, 1.20, 5.0, (10.0, -50.0), False, id="zoom1.2-rot5-gray-any-range"),
    pytest.param(4, 0.92, 14.0, (-45.0, -20.0), False, id="zoom0.92-rot14-gray"),
]


@pytest.mark.parametrize("seed, scale, rot, shift, rgb", TRANSFORMS)
def test_recovers_known_similarity_despite_exposure_colour_and_light_changes(seed, scale, rot, shift, rgb):
    fixed, moving, truth = make_pair(seed, scale=scale, rot_deg=rot, shift=shift, rgb=rgb)
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert reg.ok, reg.message
    assert reg.message == ""
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 1.0
    assert reg.scale == pytest.approx(scale, rel=0.005)
    assert reg.rotation_deg == pytest.approx(rot, abs=0.2)
    assert reg.shift_mm == pytest.approx((truth[0, 2] / PX_PER_MM, truth[1, 2] / PX_PER_MM), abs=0.15)
    assert reg.inliers >= 20 and reg.inlier_ratio >= 0.25
    assert reg.ncc > 0.5
    _, true_overlap = geometric_overlap(fixed.shape, moving.shape, truth)
    assert reg.overlap_fraction == pytest.approx(true_overlap, abs=0.02)


@pytest.mark.parametrize("visit", [0, 3, 5])
def test_recapture_by_the_synthetic_skin_renderer_is_recovered(visit):
    # Independent ground truth: analyzer.synth photographs one skin patch twice ("same protocol, another
    # day": shift, roll, zoom, exposure, white balance, light azimuth up to +-20 degrees, blur, JPEG) and
    # knows where every patch point lands in each photo.
    synth = pytest.importorskip("analyzer.synth")
    skin = synth.add_freckles(synth.make_skin(seed=3, px_per_mm=20.0), seed=3)
    base = synth.Capture(out_px=(900, 600), field_mm=45.0)
    cap = synth.recapture(np.random.default_rng(visit), base=base)
    fixed = synth.render(skin, base, seed=1)
    moving = synth.render(synth.add_redness(skin, strength=1.0, seed=visit), cap, seed=10 + visit)
    to_fixed = np.vstack([synth.patch_to_photo_matrix(skin, base), [0, 0, 1]])
    to_moving = np.vstack([synth.patch_to_photo_matrix(skin, cap), [0, 0, 1]])
    truth = (to_fixed @ np.linalg.inv(to_moving))[:2]
    scale, rot = true_scale_rotation(truth)
    reg = register(fixed, moving, px_per_mm=base.px_per_mm)
    assert reg.ok, reg.message
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 1.0
    assert reg.scale == pytest.approx(scale, rel=0.005)
    assert reg.rotation_deg == pytest.approx(rot, abs=0.2)


@pytest.mark.parametrize("skin_seed", [700, 701, 702, 703])
def test_a_follow_up_whose_scar_colour_faded_still_aligns(skin_seed):
    # The course's usual case and the registration's thinnest margin: red pits at baseline, the redness gone at
    # the follow-up (twice the validation's colour). Few SIFT matches survive (8-17 inliers), but the aligned
    # photos still correlate strongly; with 12 inliers required for that, 701 and 703 were refused.
    synth = pytest.importorskip("analyzer.synth")
    skin = synth.make_skin(seed=skin_seed, severity=0.6)
    coloured = synth.add_scar_pigment(skin, redness=2.0)
    base = synth.Capture()
    cap = synth.recapture(np.random.default_rng(skin_seed), base=base)
    fixed = synth.render(coloured, base, seed=1)
    moving = synth.render(synth.fade_scar_pigment(coloured, 0.0), cap, seed=2)
    to_fixed = np.vstack([synth.patch_to_photo_matrix(skin, base), [0, 0, 1]])
    to_moving = np.vstack([synth.patch_to_photo_matrix(skin, cap), [0, 0, 1]])
    truth = (to_fixed @ np.linalg.inv(to_moving))[:2]
    reg = register(fixed, moving, px_per_mm=base.px_per_mm)
    assert reg.ok, reg.message
    assert reg.ncc > 0.5
    # Within a quarter millimetre (2-6 px here): the red pit's even darkening and the faded pit's light and dark
    # walls put the features in slightly different places; the finest scars measured are 0.5 mm wide.
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) / base.px_per_mm < 0.25


def test_same_light_is_recovered_to_a_tenth_of_a_pixel():
    # With the light unchanged only the algorithm limits accuracy (a turned light shifts the shading
    # pattern of every pit by a fraction of a pixel, which no registration can undo).
    fixed, moving, truth = make_pair(5, scale=1.05, rot_deg=-7.0, shift=(25.0, 30.0), follow_azimuth_deg=200.0)
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert reg.ok and reg.refined
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 0.1


def test_strongly_turned_light_still_aligns_within_two_pixels():
    fixed, moving, truth = make_pair(1, follow_azimuth_deg=260.0)  # light turned by 60 degrees
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert reg.ok, reg.message
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 2.0


def test_light_turned_by_ninety_degrees_is_accepted_on_strong_correlation():
    # Few SIFT matches survive a 90 degree turn of the light, but the aligned images still correlate
    # strongly; the remaining error is the shading bias of the turned light, not a failed alignment.
    fixed, moving, truth = make_pair(2, follow_azimuth_deg=290.0)
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert reg.ok, reg.message
    assert reg.ncc > 0.5
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 3.0


def test_downscaled_work_is_scaled_back_to_full_resolution():
    # 2.5x larger photos registered on copies of at most 600 px: the matrix must be right at full size,
    # to a fraction of a pixel (a half-pixel slip in the resampling convention would show here).
    k = 2.5
    fixed, moving, truth = make_pair(6, scale=0.8, rot_deg=15.0, shift=(20.0, -35.0), rgb=False,
                                     follow_azimuth_deg=200.0)
    big = lambda a: cv2.resize(a, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)  # noqa: E731
    s = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1.0]])
    truth_big = (s @ np.vstack([truth, [0, 0, 1]]) @ np.linalg.inv(s))[:2]
    fb, mb = big(fixed), big(moving)
    reg = register(fb, mb, px_per_mm=PX_PER_MM * k, max_side_px=600)
    assert reg.ok, reg.message
    assert max_point_error(reg.matrix, truth_big, mb.shape, fb.shape) < 0.15
    assert reg.scale == pytest.approx(0.8, rel=0.005)
    assert reg.rotation_deg == pytest.approx(15.0, abs=0.2)


def test_identical_images_give_identity():
    fixed, _, _ = make_pair(1)
    reg = register(fixed, fixed.copy(), px_per_mm=PX_PER_MM)
    assert reg.ok
    assert np.allclose(reg.matrix, np.eye(2, 3), atol=0.02 / 640)
    assert reg.matrix[:, 2] == pytest.approx([0.0, 0.0], abs=0.02)
    assert reg.scale == pytest.approx(1.0, abs=1e-4)
    assert reg.ncc > 0.99
    assert reg.overlap_fraction == pytest.approx(1.0)


def test_unrelated_skin_is_not_aligned():
    fixed, moving, _ = make_pair(1, other_seed=11)
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert not reg.ok
    assert reg.message == FAIL_MESSAGE
    assert reg.ncc < 0.15 or not np.isfinite(reg.ncc)


def _featureless(kind, shape, seed):
    """A photo without skin texture; all but the constant one carry their own faint sensor noise."""
    h, w = shape
    if kind == "constant":
        return np.full((h, w), 0.5, np.float32)
    if kind == "gradient":
        flat = np.tile(np.linspace(0.2, 0.8, w, dtype=np.float32), (h, 1))
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        flat = np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (2 * 150.0 ** 2)).astype(np.float32)
    return flat + np.random.default_rng(seed).normal(0, 0.002, (h, w)).astype(np.float32)


@pytest.mark.parametrize("kind", ["constant", "gradient", "blurred-blob"])
@pytest.mark.parametrize("which", ["baseline", "follow-up", "both"])
def test_featureless_image_fails_cleanly(kind, which):
    textured, _, _ = make_pair(1)
    a = _featureless(kind, FIXED_SHAPE, 1) if which in ("baseline", "both") else textured
    b = _featureless(kind, FIXED_SHAPE, 2) if which in ("follow-up", "both") else textured
    reg = register(a, b, px_per_mm=PX_PER_MM)
    assert not reg.ok
    assert reg.message.startswith("could not align the follow-up with the baseline")
    if kind == "constant":
        assert "too little skin texture" in reg.message
    json.dumps(reg.to_dict(), allow_nan=False)


def test_small_overlap_is_rejected_with_its_own_message():
    # A close-up covering a quarter of the baseline: aligned correctly, but too little overlap to compare.
    fixed, moving, truth = make_pair(7, scale=1.0, rot_deg=0.0, shift=(0.0, 0.0), moving_shape=(200, 260))
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert not reg.ok
    assert reg.overlap_fraction == pytest.approx(200 * 260 / (480 * 640), abs=0.01)
    assert "overlaps only" in reg.message
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 1.0


@pytest.mark.parametrize("failure", ["raises", "wild", "nan"])
def test_ecc_failure_keeps_the_ransac_result(monkeypatch, failure):
    import analyzer.registration as registration

    def broken(template, image, warp, motion, criteria, mask, gauss):
        if failure == "raises":
            raise cv2.error("ECC did not converge")
        w = warp.copy()
        if failure == "wild":
            w[:, 2] += 40.0
        else:
            w[:] = np.nan
        return 0.1, w

    monkeypatch.setattr(registration.cv2, "findTransformECC", broken)
    fixed, moving, truth = make_pair(1)
    reg = register(fixed, moving, px_per_mm=PX_PER_MM)
    assert reg.ok and not reg.refined
    assert max_point_error(reg.matrix, truth, moving.shape, fixed.shape) < 1.5


@pytest.mark.parametrize("order", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("rgb", [True, False])
def test_warp_to_mask_matches_geometric_overlap(order, rgb):
    _, moving, truth = make_pair(1, rgb=rgb)
    warped, valid = warp_to(FIXED_SHAPE, moving, truth, order=order)
    assert warped.shape[:2] == FIXED_SHAPE and warped.dtype == np.float32
    assert warped.shape[2:] == moving.shape[2:]
    assert valid.dtype == bool and valid.shape == FIXED_SHAPE
    inside, frac = geometric_overlap(FIXED_SHAPE, moving.shape, truth)
    assert valid.mean() == pytest.approx(frac, abs=0.02)
    assert not np.any(valid & ~inside)  # never claims a pixel from outside the moving image
    # inside the mask the values are the moving image resampled at the true positions
    inv = cv2.invertAffineTransform(truth)
    ys, xs = np.nonzero(valid)
    pick = np.random.default_rng(0).choice(ys.size, 200, replace=False)
    for y, x in zip(ys[pick], xs[pick]):
        mx, my = inv @ (x, y, 1.0)
        near = moving[int(round(my)), int(round(mx))]
        assert np.all(np.abs(warped[y, x] - near) <= np.abs(moving).max() * 0.35)


def test_warp_to_identity_returns_the_image_and_a_full_mask():
    rng = np.random.default_rng(3)
    img = rng.random((50, 70)).astype(np.float32)
    warped, valid = warp_to(img.shape, img, np.eye(2, 3))
    assert np.allclose(warped, img, atol=1e-4)
    assert valid.all()  # every pixel is sampled exactly at a moving pixel centre


def test_warp_to_mask_is_eroded_at_the_moving_image_edge():
    img = np.ones((50, 70), np.float32)
    shift = np.array([[1.0, 0, 10.5], [0, 1.0, 5.0]])  # moving x in [0, 69] lands on fixed x in [10.5, 79.5]
    warped, valid = warp_to((60, 90), img, shift)
    cols = np.nonzero(valid.any(axis=0))[0]
    rows = np.nonzero(valid.any(axis=1))[0]
    # geometric support: columns 11..79, rows 5..54; eroded by one pixel on each side
    assert cols.min() == 12 and cols.max() == 78
    assert rows.min() == 6 and rows.max() == 53
    assert np.all(warped[valid] == pytest.approx(1.0))


def test_to_dict_is_json_safe():
    fixed, moving, _ = make_pair(1)
    d = register(fixed, moving, px_per_mm=PX_PER_MM).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert np.asarray(back["matrix"]).shape == (2, 3)
    for key in ("ok", "inliers", "inlier_ratio", "scale", "rotation_deg", "shift_mm", "ncc",
                "overlap_fraction", "message"):
        assert key in back
    assert isinstance(Registration(matrix=np.eye(2, 3), ok=False).to_dict()["scale"], type(None))


@pytest.mark.parametrize("bad, error", [
    (dict(px_per_mm=0), OptionError),
    (dict(px_per_mm=float("nan")), OptionError),
    (dict(px_per_mm=10, max_side_px=10), OptionError),
    (dict(px_per_mm=10, fixed=np.zeros((20, 20), np.float32)), ImageError),
    (dict(px_per_mm=10, moving=np.zeros((100, 100, 2), np.float32)), ImageError),
    (dict(px_per_mm=10, moving=[[0.0] * 100] * 100), ImageError),
    (dict(px_per_mm=10, fixed=np.full((100, 100), np.nan, np.float32)), ImageError),
])
def test_bad_inputs_raise_one_sentence_errors(bad, error):
    rng = np.random.default_rng(0)
    args = dict(fixed=rng.random((100, 100)).astype(np.float32), moving=rng.random((100, 100)).astype(np.float32))
    args.update(bad)
    with pytest.raises(error) as info:
        register(args.pop("fixed"), args.pop("moving"), **args)
    assert str(info.value).count(". ") == 0 and len(str(info.value)) < 200


def test_warp_to_rejects_unknown_interpolation():
    with pytest.raises(OptionError):
        warp_to((10, 10), np.zeros((10, 10), np.float32), np.eye(2, 3), order="bicubic")


@pytest.mark.slow
def test_twelve_megapixel_pair_registers_quickly():
    # The speed target is 250 ms on 2 idle cores (measured: 0.23-0.26 s of CPU time over both threads,
    # 0.19 s wall at best on a busy machine); the bound here only catches a gross slow-down under load.
    import time

    k = 4000 / 640
    fixed, moving, truth = make_pair(8, scale=1.1, rot_deg=8.0, rgb=False, follow_azimuth_deg=200.0)
    big = lambda a: cv2.resize(a, (4000, 3000), interpolation=cv2.INTER_LINEAR).astype(np.float32)  # noqa: E731
    fb, mb = big(fixed), big(moving)
    s = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1.0]])
    truth_big = (s @ np.vstack([truth, [0, 0, 1]]) @ np.linalg.inv(s))[:2]
    register(fb, mb, px_per_mm=PX_PER_MM * k)  # warm-up (first SIFT call allocates)
    t0 = time.perf_counter()
    reg = register(fb, mb, px_per_mm=PX_PER_MM * k)
    elapsed = time.perf_counter() - t0
    assert reg.ok
    assert max_point_error(reg.matrix, truth_big, mb.shape, fb.shape) < 2.0
    assert elapsed < 1.0
