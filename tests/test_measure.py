"""analyzer.measure: one photo in, the relief reading out — on skins rendered by analyzer.synth with known relief,
pigment and capture drift."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from analyzer import OptionError, measure, synth
from analyzer.measurement import DEFAULT_FIELD_MM
from analyzer.registry import METRICS

TOP_KEYS = {"roughness_index", "metrics", "scars", "quality", "px_per_mm", "scale_source"}


@pytest.fixture(scope="module")
def skin(skin_make):
    return skin_make(1, 0.6)


@pytest.fixture(scope="module")
def photo(skin, skin_photo, skin_small_capture):
    return skin_photo(skin, skin_small_capture)


@pytest.fixture(scope="module")
def base(skin, skin_measured, skin_small_capture):
    return skin_measured(skin, skin_small_capture)


def index_of(skin_photo, skin, capture, seed=1, px_per_mm=None):
    return measure(skin_photo(skin, capture, seed), px_per_mm=px_per_mm or capture.px_per_mm).roughness_index


def pct(a, b):
    return 100.0 * (a / b - 1.0)


def one_line(err) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


# ------------------------------------------------------------------------------------------------- result
def test_every_registry_metric_is_reported_and_finite(base):
    assert set(base.metrics) == set(METRICS)
    bad = [k for k, v in base.metrics.items() if not math.isfinite(v)]
    assert not bad
    assert base.roughness_index == base.metrics["roughness_index"] > 0


def test_to_dict_is_plain_json_with_the_documented_keys(base):
    d = base.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert TOP_KEYS <= set(back)
    assert set(back["metrics"]) == set(METRICS)
    assert isinstance(back["quality"]["ok"], bool)
    assert isinstance(back["quality"]["warnings"], list)
    assert back["roughness_index"] == pytest.approx(base.roughness_index)
    assert len(back["scars"]) == len(base.scars)
    assert all({"id", "kind", "x_mm", "y_mm", "diameter_mm", "depth_um"} <= set(s) for s in back["scars"])


def test_a_well_taken_photo_passes_the_quality_gate(base):
    assert base.quality.ok


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_unmeasurable_metrics_become_none_in_json_with_a_warning():
    white = np.ones((600, 900, 3), np.float32)  # blown out: nothing to measure
    m = measure(white, px_per_mm=30.0)
    assert math.isnan(m.roughness_index)
    assert any("skin" in w for w in m.warnings)
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["roughness_index"] is None


def test_unmeasurable_photo_raises_no_numpy_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measure(np.ones((600, 900, 3), np.float32), px_per_mm=30.0)


# -------------------------------------------------------------------------------------------------- scale
def test_given_scale_is_reported_as_given(base, skin_small_capture):
    assert base.scale_source == "given"
    assert base.px_per_mm == pytest.approx(skin_small_capture.px_per_mm)
    assert not any("assumed" in w for w in base.warnings)


def test_a_photo_held_upright_or_sideways_gets_one_default_scale_and_one_reading(photo):
    # Without a card the long side is assumed to span 60 mm, whichever way the phone was held (it used to be the
    # width: a portrait photo of the same skin got a 4/3 finer scale, other bands, another reading).
    sideways = np.ascontiguousarray(np.rot90(photo))
    a, b = measure(photo), measure(sideways)
    assert photo.shape[0] != photo.shape[1]
    assert b.px_per_mm == pytest.approx(a.px_per_mm)
    assert b.roughness_index == pytest.approx(a.roughness_index, rel=0.02)


def test_without_scale_the_documented_default_is_assumed_with_a_warning(photo):
    m = measure(photo)
    assert m.scale_source == "default"
    assert m.px_per_mm == pytest.approx(max(photo.shape[:2]) / DEFAULT_FIELD_MM)
    assert any(f"{DEFAULT_FIELD_MM:.0f} mm" in w for w in m.warnings)
    assert m.to_dict()["scale_source"] == "default"


def test_numpy_scalars_are_scales_like_python_numbers(photo):
    # np.int64(30) was refused ("got np.int64(30)") while np.float32(30) was taken
    a = measure(photo, px_per_mm=np.int64(30)).roughness_index
    assert a == pytest.approx(measure(photo, px_per_mm=30.0).roughness_index, rel=1e-12)


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), "x", "30", True, [30.0], 1e-300, 0.5,
                                 np.bool_(True)])
def test_bad_px_per_mm_raises_option_error(photo, bad):
    with pytest.raises(OptionError) as err:
        measure(photo, px_per_mm=bad)
    assert "px_per_mm" in one_line(err)


# ---------------------------------------------------------------------------------------------------- roi
def test_roi_over_half_the_photo_measures_only_that_half(photo, base):
    h, w = photo.shape[:2]
    m = measure(photo, px_per_mm=30.0, roi=(0, 0, w // 2, h))
    assert math.isfinite(m.roughness_index)
    assert m.analysis.maps.mask.shape[1] == pytest.approx(base.analysis.maps.mask.shape[1] / 2, abs=1)
    assert m.analysis.maps.mask.shape[0] == base.analysis.maps.mask.shape[0]
    # the string form is the same region
    s = measure(photo, px_per_mm=30.0, roi=f"0,0,{w // 2},{h}")
    assert s.roughness_index == pytest.approx(m.roughness_index, rel=1e-9)


def test_a_region_that_takes_in_the_calibration_card_does_not_measure_the_card():
    """The card's print was measured as skin inside a region: a full-frame region read 18.9 % where the whole
    photo reads 4.9 %, and the card's quarter 28 % with the quality gate content."""
    path = Path(__file__).resolve().parents[1] / "sample_images" / "week00_baseline.jpg"
    whole = measure(path)
    assert whole.card is not None
    h, w = cv2.imread(str(path)).shape[:2]
    framed = measure(path, roi=(0, 0, w, h))
    assert framed.roughness_index == pytest.approx(whole.roughness_index, rel=0.005)
    corner = whole.card.corners_px.mean(axis=0) * (w / whole.card.image_shape[1])  # the card's quarter
    x0, y0 = (0 if corner[0] < w / 2 else w // 2), (0 if corner[1] < h / 2 else h // 2)
    quarter = measure(path, roi=(x0, y0, w // 2, h // 2))
    assert quarter.roughness_index < 1.5 * whole.roughness_index


def test_roi_of_a_smooth_half_reads_smoother_than_a_scarred_half(skin_small_capture):
    # left half: the scar field; right half: the same skin with its scars removed
    sk = synth.make_skin(seed=3, severity=0.8, size_mm=(32.0, 22.0), px_per_mm=30.0)
    flat = synth.scale_scars(sk, 0.0)
    mixed = dataclasses.replace(flat, height_mm=np.where(np.arange(sk.shape[1]) < sk.shape[1] // 2,
                                                          sk.height_mm, flat.height_mm))
    img = synth.render(mixed, skin_small_capture, seed=1)
    w = img.shape[1]
    left = measure(img, px_per_mm=30.0, roi=(0, 0, w // 2 - 30, img.shape[0])).roughness_index
    right = measure(img, px_per_mm=30.0, roi=(w // 2 + 30, 0, w // 2 - 30, img.shape[0])).roughness_index
    assert right < 0.7 * left


@pytest.mark.parametrize("roi", [(800, 0, 200, 100), (-1, 0, 100, 100), (0, 0, 0, 100), (0, 500, 100, 200),
                                 "5000,0,10,10"])
def test_roi_outside_the_photo_raises_a_one_line_option_error(photo, roi):
    with pytest.raises(OptionError) as err:
        measure(photo, px_per_mm=30.0, roi=roi)
    assert "ROI" in one_line(err)


@pytest.mark.parametrize("roi", ["1,2,3", "a,b,c,d", "1,2,3,4,5", (1, 2, 3)])
def test_malformed_roi_raises_a_one_line_option_error(photo, roi):
    with pytest.raises(OptionError) as err:
        measure(photo, px_per_mm=30.0, roi=roi)
    one_line(err)


# ------------------------------------------------------------------------------------ invariance and order
@pytest.mark.parametrize("edit, limit", [(dict(freckles=60), 5.0), (dict(redness=1.5), 5.0)])
def test_pigment_changes_hardly_move_the_roughness_index(skin_make, skin_photo, skin_small_capture, base, edit,
                                                         limit):
    edited = skin_make(1, 0.6, **edit)
    change = pct(index_of(skin_photo, edited, skin_small_capture), base.roughness_index)
    assert abs(change) <= limit


DRIFT = [dict(exposure=0.7), dict(exposure=1.3), dict(white_balance=(1.1, 1.0, 0.9))]
DRIFT_IDS = ["exposure0.7", "exposure1.3", "wb1.1-1-0.9"]


@pytest.mark.parametrize("drift", DRIFT, ids=DRIFT_IDS)
def test_exposure_and_white_balance_do_not_move_the_index_of_a_lossless_photo(skin, skin_photo, skin_small_capture,
                                                                               drift):
    lossless = dataclasses.replace(skin_small_capture, jpeg_quality=None)
    ref = index_of(skin_photo, skin, lossless)
    assert abs(pct(index_of(skin_photo, skin, dataclasses.replace(lossless, **drift)), ref)) <= 1.0


@pytest.mark.parametrize("drift", DRIFT, ids=DRIFT_IDS)
def test_exposure_and_white_balance_move_the_index_of_a_jpeg_photo_by_at_most_3_percent(skin, skin_photo,
                                                                                        skin_small_capture, base,
                                                                                        drift):
    change = pct(index_of(skin_photo, skin, dataclasses.replace(skin_small_capture, **drift)), base.roughness_index)
    assert abs(change) <= 3.0


def test_index_rises_with_severity(skin_make, skin_photo, skin_small_capture):
    idx = [index_of(skin_photo, skin_make(1, s), skin_small_capture) for s in (0.2, 0.5, 0.9)]
    assert idx[0] < idx[1] < idx[2]


def test_index_rises_with_scar_depth(skin_make, skin_photo, skin_small_capture, base):
    idx = [index_of(skin_photo, skin_make(1, 0.6, depth=f), skin_small_capture) for f in (0.5, 0.8)]
    idx.append(base.roughness_index)
    idx.append(index_of(skin_photo, skin_make(1, 0.6, depth=1.3), skin_small_capture))
    assert all(a < b for a, b in zip(idx, idx[1:]))


def test_sensor_noise_hardly_moves_the_index(skin, skin_photo, skin_small_capture, base):
    assert abs(pct(index_of(skin_photo, skin, skin_small_capture, seed=2), base.roughness_index)) <= 1.0


# --------------------------------------------------------------------------------------------------- files
def write_cv2(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def write_pil(path, rgb):
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)


@pytest.mark.parametrize("writer", [write_cv2, write_pil], ids=["cv2", "pil"])
def test_a_png_file_and_its_array_give_the_same_numbers(tmp_path, photo, base, writer):
    path = tmp_path / "photo.png"
    writer(path, photo)
    as_float = measure(np.asarray(photo, np.float32) / 255, px_per_mm=30.0)
    for p in (path, str(path)):
        m = measure(p, px_per_mm=30.0)
        assert m.px_per_mm == pytest.approx(30.0)
        # a file is decoded to float before it is reduced, like a float array: the same numbers
        for k, v in as_float.metrics.items():
            assert m.metrics[k] == pytest.approx(v, rel=1e-4, abs=1e-9), k
        # a uint8 array is reduced before its conversion to float (rounded to whole code values): 0.1 %
        assert m.roughness_index == pytest.approx(base.roughness_index, rel=1e-3)
        assert len(m.scars) == len(base.scars)


def test_a_files_px_per_mm_refers_to_the_file_pixels(tmp_path, photo, base):
    big = cv2.resize(np.asarray(photo), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # 60 px/mm
    path = tmp_path / "big.png"
    write_cv2(path, big)
    m = measure(path, px_per_mm=60.0)
    assert m.px_per_mm == pytest.approx(60.0)
    assert m.analysis.maps.px_per_mm == pytest.approx(base.analysis.maps.px_per_mm)
    assert m.analysis.maps.mask.shape == base.analysis.maps.mask.shape
    assert m.roughness_index == pytest.approx(base.roughness_index, rel=0.03)
    # a roi is in file pixels too: the left half of the big file is the left half of the skin
    half = measure(path, px_per_mm=60.0, roi=(0, 0, big.shape[1] // 2, big.shape[0]))
    assert half.analysis.maps.mask.shape[1] == pytest.approx(base.analysis.maps.mask.shape[1] / 2, abs=1)


def test_card_white_balance_makes_the_erythema_index_independent_of_a_colour_cast():
    # the calibration card's grey wedge gives the white balance; redness then reads the same under a 10 % cast
    skin = synth.make_skin(seed=3, severity=0.5, size_mm=synth.SAMPLE_PATCH_MM)
    cap = synth.SAMPLE_CAPTURE
    neutral = measure(synth.render(skin, cap, seed=1))
    cast = measure(synth.render(skin, dataclasses.replace(cap, white_balance=(1.1, 1.0, 0.9)), seed=1))
    assert neutral.scale_source == cast.scale_source == "card"
    assert cast.metrics["erythema_index"] == pytest.approx(neutral.metrics["erythema_index"], rel=0.01)
    assert cast.roughness_index == pytest.approx(neutral.roughness_index, rel=0.01)



def test_a_wide_photo_with_the_card_keeps_the_resolution_the_card_measures():
    # 2600 px wide at 12.8 px/mm: the card search works on a halved copy, the measurement must not
    skin = synth.make_skin(seed=5, severity=0.5, size_mm=(220, 170), px_per_mm=20)
    cap = synth.Capture(field_mm=2600 / 12.8, out_px=(2600, 1950), card_center_mm=(100, 80))
    m = measure(synth.render(skin, cap, seed=1))
    assert m.scale_source == "card"
    assert m.px_per_mm == pytest.approx(12.8, rel=0.01)
    assert "low_resolution" not in m.quality.codes


@pytest.mark.parametrize("kw", [dict(roi=5), dict(roi=[1, 2]), dict(regions=5), dict(regions=[1, 2]),
                                dict(regions={"cheek": 7})])
def test_malformed_roi_or_regions_are_one_line_option_errors(photo, kw):
    # (a bare TypeError came out of measure(img, roi=5) and regions=5)
    with pytest.raises(OptionError) as err:
        measure(photo, px_per_mm=30.0, **kw)
    assert "\n" not in str(err.value)


def test_analyse_divides_the_relief_by_the_contrast_it_is_given_and_leaves_pigment_alone():
    """compare's card correction: contrast=k scales every relief reading by 1/k (the shading is log-contrast), the
    pigment metrics not at all; an impossible factor is refused with the fix."""
    from analyzer.measurement import analyse, valid_mask
    from analyzer.relief import to_analysis_grid

    img = synth.render(synth.make_skin(seed=5, severity=0.6), synth.Capture(), seed=1)
    grid, p = to_analysis_grid(np.asarray(img, np.float32) / 255, px_per_mm=synth.Capture().px_per_mm)
    valid = valid_mask(grid, px_per_mm=p)
    plain = analyse(grid, px_per_mm=p, valid=valid)
    flatter = analyse(grid, px_per_mm=p, valid=valid, contrast=1.25)
    assert flatter.metrics["roughness_index"] == pytest.approx(plain.metrics["roughness_index"] / 1.25, rel=1e-4)
    assert flatter.metrics["scar.Sq"] == pytest.approx(plain.metrics["scar.Sq"] / 1.25, rel=1e-4)
    assert flatter.metrics["melanin_unevenness"] == plain.metrics["melanin_unevenness"]
    assert analyse(grid, px_per_mm=p, valid=valid, contrast=np.int64(1)).metrics["roughness_index"] \
        == plain.metrics["roughness_index"]
    for bad in (0.0, -1.0, float("nan"), "1.1", True, 10**400, 1e-39, 50.0):
        with pytest.raises(OptionError, match="positive factor between 0.1 and 10"):
            analyse(grid, px_per_mm=p, valid=valid, contrast=bad)
