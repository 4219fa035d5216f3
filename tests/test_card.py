"""Calibration card: exact geometry, PDF size, detection of scale / tilt / white balance on synthetic photos.

The synthetic photos put the card in front of a pinhole camera with a known pose, so the true homography
(card mm -> image px), its local scale and the tilt are known exactly; then a colour cast, blur, noise and
JPEG compression are applied.
"""
from __future__ import annotations

import io
import json
import math
import re
import time

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from analyzer.card import (
    CARD_LAYOUT, CardDetection, apply_white_balance, card_image, contrast_transfer, detect_card, tone_slope,
    write_card_pdf,
)
from analyzer.errors import ImageError, OptionError

CAST = np.array([1.10, 1.00, 0.90])  # colour cast on linear channels
PAPER = 0.8  # linear level of the paper white under the test light (before the cast)
SKIN = np.array([0.50, 0.32, 0.25])  # linear skin-like background


def srgb_to_linear(v):
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v):
    v = np.clip(np.asarray(v, np.float64), 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def camera_homography(*, tilt_deg, roll_deg, px_per_mm, centre_px, focal_px=3000.0, tilt_axis_deg=30.0):
    """Card mm -> image px for a pinhole camera looking at the card's centre on its optical axis.

    The card plane is rotated by ``tilt_deg`` about an in-plane axis at ``tilt_axis_deg`` to the card's x
    axis, then rolled by ``roll_deg`` about the optical axis; the distance makes the scale at the centre
    ``px_per_mm`` along the untilted direction.
    """
    cx, cy = CARD_LAYOUT.centre_mm
    a = math.radians(tilt_axis_deg)
    axis = np.array([math.cos(a), math.sin(a), 0.0])
    R_tilt, _ = cv2.Rodrigues(axis * math.radians(tilt_deg))
    R_roll, _ = cv2.Rodrigues(np.array([0.0, 0.0, math.radians(roll_deg)]))
    R = R_roll @ R_tilt
    Z = focal_px / px_per_mm
    K = np.array([[focal_px, 0, centre_px[0]], [0, focal_px, centre_px[1]], [0, 0, 1.0]])
    H = K @ np.column_stack([R[:, 0], R[:, 1], [0, 0, Z]]) @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    return H / H[2, 2]


def true_local_scale(H):
    """sqrt|det J| at the card centre, by central finite differences of the projection."""
    c = np.array(CARD_LAYOUT.centre_mm)

    def proj(p):
        q = H @ np.array([p[0], p[1], 1.0])
        return q[:2] / q[2]

    d = 1e-3
    J = np.column_stack([(proj(c + [d, 0]) - proj(c - [d, 0])) / (2 * d),
                         (proj(c + [0, d]) - proj(c - [0, d])) / (2 * d)])
    return math.sqrt(abs(np.linalg.det(J)))


def render_photo(H, shape=(600, 800), *, seed=0, occlude_right=False, supersample=3, jpeg_quality=90,
                 card_ppm=32.0):
    """A photo of the card lying on skin, seen through homography H (card mm -> photo px)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    k = supersample
    card = srgb_to_linear(card_image(px_per_mm=card_ppm) / 255.0).astype(np.float32)
    # card mm -> card raster px (pixel centres at (mm * s - 0.5)); photo px -> big canvas px likewise
    A = np.array([[card_ppm, 0, -0.5], [0, card_ppm, -0.5], [0, 0, 1.0]])
    T = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])
    M = T @ H @ np.linalg.inv(A)
    big = cv2.warpPerspective(card, M, (w * k, h * k), flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.warpPerspective(np.ones(card.shape[:2], np.float32), M, (w * k, h * k), flags=cv2.INTER_LINEAR)
    if k > 1:
        big = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    texture = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 3.0)
    skin = SKIN[None, None, :] * (1 + 0.15 * texture / texture.std())[:, :, None]
    lin = alpha[:, :, None] * big * PAPER + (1 - alpha[:, :, None]) * skin
    if occlude_right:  # a finger over the card's right third: markers 1 and 2 hidden
        finger = np.array([[39.0, -3.0], [53.0, -3.0], [53.0, 33.0], [39.0, 33.0]])
        poly = cv2.perspectiveTransform(finger.reshape(-1, 1, 2), H).reshape(-1, 2)
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, np.round(poly).astype(np.int32), 1)
        lin[m.astype(bool)] = SKIN * 1.1
    lin = lin * CAST
    lin = cv2.GaussianBlur(lin.astype(np.float32), (0, 0), 0.7)
    enc = linear_to_srgb(lin) + rng.normal(0, 0.01, lin.shape)
    u8 = np.clip(enc * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    return (cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0)


def white_patch_linear(rgb, H):
    """Mean linear RGB of the inner 60 % of the white patch, located with the TRUE homography."""
    _, (x, y, w, h), _, _ = CARD_LAYOUT.patches[0]
    inner = np.array([[x + 0.2 * w, y + 0.2 * h], [x + 0.8 * w, y + 0.2 * h],
                      [x + 0.8 * w, y + 0.8 * h], [x + 0.2 * w, y + 0.8 * h]])
    poly = cv2.perspectiveTransform(inner.reshape(-1, 1, 2), H).reshape(-1, 2)
    m = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillConvexPoly(m, np.round(poly).astype(np.int32), 1)
    return srgb_to_linear(rgb[m.astype(bool)]).mean(0)


# ------------------------------------------------------------------------------------------- the card itself


def test_card_fits_in_50_by_30_mm_and_every_element_is_on_it():
    W, H = CARD_LAYOUT.size_mm
    assert W <= 50 and H <= 30
    boxes = [(c[0][0], c[0][1], CARD_LAYOUT.marker_size_mm, CARD_LAYOUT.marker_size_mm)
             for c in CARD_LAYOUT.markers.values()]
    boxes += [p[1] for p in CARD_LAYOUT.patches] + [CARD_LAYOUT.label_box]
    for x, y, w, h in boxes:
        assert 0 < x and x + w < W and 0 < y and y + h < H
    assert sorted(CARD_LAYOUT.markers) == [0, 1, 2, 3]
    refl = [p[3] for p in CARD_LAYOUT.patches]
    assert refl[0] == 1.0 and all(a > b for a, b in zip(refl, refl[1:])), "wedge runs from white to dark"


def test_markers_have_a_white_quiet_zone_of_at_least_one_cell():
    img = card_image(px_per_mm=24)[:, :, 0]
    cell = CARD_LAYOUT.marker_size_mm / 6
    for corners in CARD_LAYOUT.markers.values():
        (x0, y0), (x1, y1) = corners[0], corners[2]
        r = lambda v: int(round(v * 24))  # noqa: E731
        ring = img[r(y0 - cell):r(y1 + cell), r(x0 - cell):r(x1 + cell)].copy()
        ring[r(cell):-r(cell), r(cell):-r(cell)] = 255
        assert ring.min() == 255


@pytest.mark.parametrize("px_per_mm", [24.0, 12.0])
def test_card_raster_has_exact_geometry(px_per_mm):
    img = card_image(px_per_mm=px_per_mm)
    assert img.dtype == np.uint8 and img.shape == (round(30 * px_per_mm), round(50 * px_per_mm), 3)
    # ArUco finds every marker where the layout says (pixel centres at mm * s - 0.5)
    pad = 20
    gray = np.pad(img[:, :, 0], pad, constant_values=255)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), params)
    corners, ids, _ = det.detectMarkers(gray)
    assert sorted(ids.ravel().tolist()) == [0, 1, 2, 3]
    for c, i in zip(corners, ids.ravel()):
        expected = np.array(CARD_LAYOUT.markers[int(i)]) * px_per_mm - 0.5 + pad
        assert np.abs(c.reshape(4, 2) - expected).max() < 0.6
    # wedge patch centres carry their nominal grey
    for _, (x, y, w, h), value, _ in CARD_LAYOUT.patches:
        assert img[int((y + h / 2) * px_per_mm), int((x + w / 2) * px_per_mm), 0] == value
    # ruler: ticks 1 mm apart along the ruler (dark columns just above the baseline)
    x0, x1, by = CARD_LAYOUT.ruler
    row = img[int((by - 0.6) * px_per_mm), :, 0]
    dark = np.flatnonzero(row < 128)
    groups = np.split(dark, np.flatnonzero(np.diff(dark) > 1) + 1)
    centres = np.array([g.mean() for g in groups]) + 0.5
    assert len(centres) == round(x1 - x0) + 1
    np.testing.assert_allclose(np.diff(centres) / px_per_mm, 1.0, atol=1.0 / px_per_mm)


def test_pdf_has_exact_physical_size(tmp_path):
    ppm = 10.0
    path = write_card_pdf(tmp_path / "card.pdf", px_per_mm=ppm)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    box = [float(v) for v in re.search(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", data).group(1).split()]
    pt_per_mm = 72 / 25.4
    page_w_mm, page_h_mm = (box[2] - box[0]) / pt_per_mm, (box[3] - box[1]) / pt_per_mm
    assert page_w_mm == pytest.approx(210.0, abs=0.05) and page_h_mm == pytest.approx(297.0, abs=0.05)
    # the page is one raster (a JPEG stream) spanning the MediaBox: measure the card on it
    start = data.index(b"stream", data.index(b"/DCTDecode")) + len(b"stream")
    start += 2 if data[start:start + 2] == b"\r\n" else 1
    page = np.asarray(Image.open(io.BytesIO(data[start:data.index(b"endstream", start)])))
    assert page.shape == (round(297 * ppm), round(210 * ppm))
    mm_per_px = page_w_mm / page.shape[1]
    labels, n = ndimage.label(page < 200)
    boxes = ndimage.find_objects(labels)
    sizes = [((s[1].stop - s[1].start) * mm_per_px, (s[0].stop - s[0].start) * mm_per_px) for s in boxes]
    card_w, card_h = max(sizes, key=lambda wh: wh[0] * wh[1])  # the grey cut line around the card
    assert card_w == pytest.approx(CARD_LAYOUT.size_mm[0], abs=0.15)
    assert card_h == pytest.approx(CARD_LAYOUT.size_mm[1], abs=0.15)
    assert card_w <= 50.0 + 0.15 and card_h <= 30.0 + 0.15


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("tilt_deg,roll_deg", [(0, 0), (10, 25), (20, -40)])
def test_scale_within_1_percent_and_tilt_estimated(tilt_deg, roll_deg):
    H = camera_homography(tilt_deg=tilt_deg, roll_deg=roll_deg, px_per_mm=10.0, centre_px=(380, 320))
    photo = render_photo(H, seed=tilt_deg)
    det = detect_card(photo)
    assert det is not None
    assert det.marker_ids == [0, 1, 2, 3]
    truth = true_local_scale(H)
    assert det.px_per_mm == pytest.approx(truth, rel=0.01)
    assert det.tilt_deg == pytest.approx(tilt_deg, abs=3.0)
    truth_corners = cv2.perspectiveTransform(CARD_LAYOUT.outline.reshape(-1, 1, 2), H).reshape(4, 2)
    assert np.abs(det.corners_px - truth_corners).max() < 1.5
    assert det.reprojection_error_px < 1.0


def test_white_balance_removes_a_10_percent_colour_cast():
    H = camera_homography(tilt_deg=10, roll_deg=5, px_per_mm=10.0, centre_px=(400, 300))
    photo = render_photo(H, seed=3)
    before = white_patch_linear(photo, H)
    assert before[0] / before[2] > 1.15  # the cast is really there
    det = detect_card(photo)
    np.testing.assert_allclose(det.white_balance_gains, CAST[1] / CAST, rtol=0.02)
    after = white_patch_linear(apply_white_balance(photo, det.white_balance_gains), H)
    assert np.abs(after / after.mean() - 1).max() < 0.01
    assert det.white_linear == pytest.approx(PAPER, rel=0.03)  # exposure: paper white at 0.8 linear


@pytest.mark.parametrize("p", [0.94, 1.0, 1.06])
def test_tone_slope_recovers_a_cameras_tone_curve_from_the_grey_wedge(p):
    """A phone's tone curve v ** p on the encoded values, applied to the whole photo (JPEG, blur, noise and a
    colour cast included): the card's tone slope equals that of the printed steps put through the same curve."""
    H = camera_homography(tilt_deg=10, roll_deg=5, px_per_mm=10.0, centre_px=(400, 300))
    photo = render_photo(H, seed=4)
    det = detect_card(np.clip(photo, 0, 1) ** np.float32(p))
    nominal = np.array([q[3] for q in CARD_LAYOUT.patches])
    expected = tone_slope(srgb_to_linear(linear_to_srgb(nominal * PAPER * 0.9) ** p)[:, None] * np.ones(3))
    assert det.tone_slope == pytest.approx(expected, abs=0.01)
    assert (det.tone_slope - 1.0) * (p - 1.0) >= 0  # more contrast reads steeper, less flatter
    if p == 1.0:
        assert det.tone_slope == pytest.approx(1.0, abs=0.01)  # the printed steps as printed


def test_tone_slope_needs_three_unclipped_patches_spanning_the_wedge():
    nominal = np.array([q[3] for q in CARD_LAYOUT.patches])
    lin = nominal[:, None] * np.ones(3)
    assert tone_slope(lin) == pytest.approx(1.0)
    assert tone_slope(lin ** 1.05) == pytest.approx(1.05)
    assert tone_slope(lin, usable=[False, True, True, True, False]) == pytest.approx(1.0)  # 200, 150, 100
    assert math.isnan(tone_slope(lin, usable=[True, True, True, False, False]))  # 255-150: too short a span
    assert math.isnan(tone_slope(lin, usable=[False, False, False, True, True]))  # two patches
    assert math.isnan(tone_slope(np.full((5, 3), np.nan)))


def _seen(patches_linear, gains=(1.0, 1.0, 1.0)) -> CardDetection:
    """A card detection with these patch values (geometry irrelevant to the contrast transfer)."""
    return CardDetection(10.0, 0.0, np.eye(3), np.zeros((4, 2)), [0, 1, 2, 3], tuple(gains), 0.8, 0.1,
                         np.asarray(patches_linear, float), (100, 100))


def test_contrast_transfer_recovers_a_tone_curve_a_veil_and_ignores_exposure():
    """The follow-up's log-contrast against the baseline's at the skin's brightness, read on the wedge: a tone curve
    L ** p is p at every brightness; a veil c lifts the dark steps, so the slope is L / (L + c) there; an exposure
    change (a gain) or a white-balance cast the card's gains undo is 1."""
    wedge = 0.8 * np.array([q[3] for q in CARD_LAYOUT.patches])  # paper white at 0.8: no patch clipped
    base = _seen(wedge[:, None] * np.ones(3))
    for p in (0.93, 1.0, 1.07):
        for at in (0.05, 0.2, 0.4):
            assert contrast_transfer(base, _seen((wedge[:, None] * np.ones(3)) ** p), at_luminance=at) \
                == pytest.approx(p, abs=1e-6)
    assert contrast_transfer(base, _seen(0.7 * wedge[:, None] * np.ones(3)), at_luminance=0.2) \
        == pytest.approx(1.0, abs=1e-6)
    cast = np.array([1.2, 1.0, 0.8])
    assert contrast_transfer(base, _seen(wedge[:, None] * cast, gains=1 / cast), at_luminance=0.2) \
        == pytest.approx(1.0, abs=1e-6)
    veiled = _seen((wedge + 0.01)[:, None] * np.ones(3))
    slopes = [contrast_transfer(base, veiled, at_luminance=at) for at in (0.05, 0.1, 0.25)]
    assert slopes[0] < slopes[1] < slopes[2] < 1.0  # a veil flattens the dark end most
    assert slopes[2] == pytest.approx(0.25 / 0.26, abs=1e-4)  # exact: the fit models a veil
    # ... also when the white step is clipped in the follow-up (four steps; a log-log parabola read 0.967, not 0.947)
    bright = 1.25 * wedge
    assert contrast_transfer(_seen(bright[:, None] * np.ones(3)), _seen((bright + 0.016)[:, None] * np.ones(3)),
                             at_luminance=0.285) == pytest.approx(0.285 / 0.301, abs=1e-4)
    # a veil in the baseline instead, and a tone curve with a veil
    assert contrast_transfer(veiled, base, at_luminance=0.25) == pytest.approx(0.25 / 0.24, abs=1e-4)
    mixed = _seen((1.1 * wedge ** 1.05 + 0.01)[:, None] * np.ones(3))
    lift = 1.1 * 0.2 ** 1.05
    assert contrast_transfer(base, mixed, at_luminance=0.2) == pytest.approx(1.05 * lift / (lift + 0.01), abs=1e-4)


def test_contrast_transfer_needs_three_usable_steps_in_both_photos_and_a_plausible_slope():
    wedge = 0.8 * np.array([q[3] for q in CARD_LAYOUT.patches])
    lin = wedge[:, None] * np.ones(3)
    base = _seen(lin)
    brighter = (2.5 * lin) ** 1.04  # white and 200 clipped (> 0.955 linear): three steps left, a line through them
    assert contrast_transfer(base, _seen(brighter), at_luminance=0.2) == pytest.approx(1.04, abs=1e-6)
    dark = lin.copy()
    dark[[0, 1, 2]] = np.nan  # covered: two steps left
    assert math.isnan(contrast_transfer(base, _seen(dark), at_luminance=0.2))
    assert math.isnan(contrast_transfer(base, _seen(lin ** 1.4), at_luminance=0.2))  # not a tone curve: glare?
    assert math.isnan(contrast_transfer(base, _seen(lin), at_luminance=float("nan")))


def test_no_card_gives_none():
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.standard_normal((600, 800)).astype(np.float32), (0, 0), 2.0)
    skin = linear_to_srgb(SKIN[None, None] * (1 + 0.3 * texture / texture.std())[:, :, None])
    assert detect_card(skin.astype(np.float32)) is None
    from skimage import data
    assert detect_card(data.coffee()) is None


def test_partly_occluded_card_with_two_markers_still_measured():
    H = camera_homography(tilt_deg=10, roll_deg=-15, px_per_mm=10.0, centre_px=(400, 300))
    photo = render_photo(H, seed=11, occlude_right=True)
    det = detect_card(photo)
    assert det is not None
    assert det.marker_ids == [0, 3]
    assert det.px_per_mm == pytest.approx(true_local_scale(H), rel=0.02)
    assert any("markers visible" in w for w in det.warnings)
    np.testing.assert_allclose(det.white_balance_gains, CAST[1] / CAST, rtol=0.02)


def test_min_markers_four_rejects_an_occluded_card():
    H = camera_homography(tilt_deg=0, roll_deg=0, px_per_mm=10.0, centre_px=(400, 300))
    assert detect_card(render_photo(H, seed=2, occlude_right=True), min_markers=4) is None


def test_mask_covers_the_card_and_scales_to_other_shapes():
    H = camera_homography(tilt_deg=0, roll_deg=30, px_per_mm=10.0, centre_px=(400, 300))
    photo = render_photo(H, seed=5)
    det = detect_card(photo)
    m = det.mask(photo.shape, margin_mm=0.0)
    assert m.shape == photo.shape[:2] and m.dtype == bool
    true_area = 50 * 30 * true_local_scale(H) ** 2
    assert m.sum() == pytest.approx(true_area, rel=0.01)
    assert det.mask(photo.shape, margin_mm=2.0).sum() == pytest.approx(54 * 34 * 10.0 ** 2, rel=0.01)
    half = det.mask((300, 400), margin_mm=0.0)
    assert half.sum() == pytest.approx(true_area / 4, rel=0.02)
    centre = det.to_image([CARD_LAYOUT.centre_mm])[0]
    assert m[int(round(centre[1])), int(round(centre[0]))] and not m[5, 5]


def test_detection_on_a_12_megapixel_photo_is_fast_and_accurate():
    H = camera_homography(tilt_deg=15, roll_deg=10, px_per_mm=30.0, centre_px=(1400, 1700))
    # a plain rendering (no supersampling or colour work) keeps the test fast; the timing is what matters
    s = 32.0
    A = np.array([[s, 0, -0.5], [0, s, -0.5], [0, 0, 1.0]])
    photo = np.full((3000, 4000, 3), (200, 150, 130), np.uint8)
    cv2.warpPerspective(card_image(px_per_mm=s), H @ np.linalg.inv(A), (4000, 3000), dst=photo,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    photo = photo.astype(np.float32) / 255.0
    detect_card(photo[:64, :64])  # warm-up (first OpenCV call)
    t0 = time.perf_counter()
    det = detect_card(photo)
    elapsed = time.perf_counter() - t0
    assert det is not None and det.marker_ids == [0, 1, 2, 3]
    assert det.px_per_mm == pytest.approx(true_local_scale(H), rel=0.01)
    assert elapsed < 2.0, f"detect_card took {elapsed:.2f} s on 12 MP"


def test_to_dict_is_json_serialisable():
    H = camera_homography(tilt_deg=5, roll_deg=0, px_per_mm=9.0, centre_px=(400, 300))
    det = detect_card(render_photo(H, seed=9))
    d = json.loads(json.dumps(det.to_dict()))
    assert d["marker_ids"] == [0, 1, 2, 3] and len(d["white_balance_gains"]) == 3
    assert np.array(d["homography"]).shape == (3, 3)


def test_identity_gains_leave_the_photo_unchanged():
    rng = np.random.default_rng(1)
    rgb = rng.random((20, 30, 3), dtype=np.float32)
    np.testing.assert_allclose(apply_white_balance(rgb, (1, 1, 1)), rgb, atol=1e-5)


@pytest.mark.parametrize("gains", [(0, 1, 1), (-1, 1, 1), (float("nan"), 1, 1)])
def test_bad_gains_raise_option_error(gains):
    with pytest.raises(OptionError):
        apply_white_balance(np.zeros((4, 4, 3), np.float32), gains)


@pytest.mark.parametrize("shape", [(100, 100), (100, 100, 4), (100,)])
def test_non_rgb_input_raises_image_error(shape):
    with pytest.raises(ImageError):
        detect_card(np.zeros(shape, np.float32))


def test_too_coarse_card_raster_raises_option_error():
    with pytest.raises(OptionError):
        card_image(px_per_mm=1.0)


@pytest.mark.parametrize("tilt_deg", [0, 35])
def test_with_a_given_scale_the_card_is_searched_on_a_reduced_copy_and_measured_the_same(monkeypatch, tilt_deg):
    # 24 px/mm: 192 px markers, searched at 1/2 (96 px), then measured again at full resolution; a card at a
    # slant (35°) shrinks them further along one axis and must still be found.
    from analyzer import card as card_mod
    from analyzer.measurement import CARD_MARKER_PX, resolve_scale
    H = camera_homography(tilt_deg=tilt_deg, roll_deg=20, px_per_mm=24.0, centre_px=(700, 520))
    photo = render_photo(H, shape=(1050, 1400), seed=3, card_ppm=48.0)
    full = detect_card(photo, max_side=10_000)
    sides = []
    real = card_mod.detect_card
    monkeypatch.setattr(card_mod, "detect_card", lambda rgb, **kw: sides.append(kw.get("max_side")) or real(rgb, **kw))
    p, source, det, _ = resolve_scale(photo, px_per_mm=24.0)
    assert sides == [700] and 8.0 * 24.0 / 2 >= CARD_MARKER_PX  # the copy searched is half the photo
    assert (p, source) == (24.0, "given")
    # the scale is the file's: a photo already reduced by 2 (downscale) has the same 192 px markers at 48 px/mm
    sides.clear()
    assert resolve_scale(photo, px_per_mm=48.0, downscale=2.0)[2].px_per_mm == pytest.approx(full.px_per_mm)
    assert sides == [700]
    assert det is not None and det.marker_ids == full.marker_ids == [0, 1, 2, 3]
    assert det.px_per_mm == pytest.approx(full.px_per_mm, rel=1e-6)
    np.testing.assert_allclose(det.white_balance_gains, full.white_balance_gains, rtol=1e-6)
    # without a scale the markers could be any size: detect_card's own search (the whole of this photo)
    sides.clear()
    resolve_scale(photo, px_per_mm=None)
    assert sides == [None]


def test_the_reduced_card_search_is_never_larger_than_detect_cards_own(monkeypatch):
    from analyzer import card as card_mod
    from analyzer.measurement import resolve_scale
    sides = []
    monkeypatch.setattr(card_mod, "detect_card", lambda rgb, **kw: sides.append(kw.get("max_side")))
    photo = np.full((3000, 4000, 3), (200, 150, 130), np.uint8)
    resolve_scale(photo, px_per_mm=16.0)  # 128 px markers: half would be a 2000 px copy
    assert sides == [card_mod.SEARCH_MAX_SIDE] == [1600]
