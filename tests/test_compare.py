"""analyzer.compare: change of the roughness index between a baseline and a follow-up, against skins rendered by
analyzer.synth whose scars are made shallower or deeper by a known factor (synth.scale_scars)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from analyzer import RegistrationError, ReliefError, compare, synth
from analyzer.comparison import REPEATABILITY_SD_PCT, Comparison

KEYS = {"baseline", "followup", "change_pct", "ci95_pct", "mdc_pct", "significant", "registration"}


@pytest.fixture(scope="module")
def cap(skin_small_capture):
    return skin_small_capture


@pytest.fixture(scope="module")
def faithful(cap):
    """The follow-up of a careful photographer: 0.6 mm off, camera turned by 2 degrees, another noise draw."""
    return dataclasses.replace(cap, center_mm=(30.5, 22.8), rotation_deg=2.0)


@pytest.fixture(scope="module")
def skin(skin_make):
    return skin_make(1, 0.6)


@pytest.fixture(scope="module")
def baseline(skin, skin_photo, cap):
    return skin_photo(skin, cap, 1)


def compare_to(skin_make, skin_photo, baseline, cap, faithful, depth) -> Comparison:
    follow = skin_photo(skin_make(1, 0.6, depth=depth), faithful, 2)
    return compare(baseline, follow, px_per_mm=cap.px_per_mm, followup_px_per_mm=faithful.px_per_mm)


@pytest.fixture(scope="module")
def smoother(skin_make, skin_photo, baseline, cap, faithful):
    return compare_to(skin_make, skin_photo, baseline, cap, faithful, 0.7)


@pytest.fixture(scope="module")
def identical(baseline, cap):
    return compare(baseline, baseline, px_per_mm=cap.px_per_mm, followup_px_per_mm=cap.px_per_mm)


# ---------------------------------------------------------------------------------------------- no change
def test_identical_photos_show_no_change(identical):
    assert identical.registration.ok
    assert abs(identical.change_pct) < 0.5
    assert not identical.significant
    assert identical.direction == "no measurable change"
    assert all(s["status"] == "unchanged" for s in identical.scar_changes)


def test_identical_photos_without_any_scale_show_no_change(baseline):
    c = compare(baseline, baseline)
    assert abs(c.change_pct) < 0.5 and not c.significant
    assert c.baseline.scale_source == "default"


def test_recaptures_of_unchanged_skin_stay_within_5_percent_and_are_not_significant(skin, skin_photo):
    rng = np.random.default_rng(2024)
    changes = []
    for i in range(2):
        a, b = synth.recapture(rng), synth.recapture(rng)
        c = compare(skin_photo(skin, a, 1), skin_photo(skin, b, 2), px_per_mm=a.px_per_mm,
                    followup_px_per_mm=b.px_per_mm)
        changes.append(c.change_pct)
        assert c.registration.ok
        assert not c.significant, f"pair {i}: {c.change_pct:+.1f} % called significant"
    assert max(abs(v) for v in changes) <= 5.0, changes


def test_shifting_the_camera_alone_does_not_bias_the_change(skin, skin_photo, baseline, cap):
    # half a pixel of the 10 px/mm analysis grid along x and y: where interpolation smooths most
    shifted = dataclasses.replace(cap, center_mm=(30.05, 22.55))
    c = compare(baseline, skin_photo(skin, shifted, 2), px_per_mm=cap.px_per_mm, followup_px_per_mm=cap.px_per_mm)
    assert abs(c.change_pct) <= 1.0


def test_swapping_baseline_and_followup_negates_the_change(skin, skin_photo, baseline, cap, faithful):
    follow = skin_photo(skin, faithful, 2)
    ab = compare(baseline, follow, px_per_mm=cap.px_per_mm, followup_px_per_mm=faithful.px_per_mm)
    ba = compare(follow, baseline, px_per_mm=faithful.px_per_mm, followup_px_per_mm=cap.px_per_mm)
    assert abs(ab.change_pct + ba.change_pct) <= 1.5, (ab.change_pct, ba.change_pct)


def test_repeatability_is_the_rms_change_and_its_upper_confidence_limit():
    from scipy.stats import chi2

    from analyzer.comparison import repeatability
    r = repeatability([3.0, -4.0, float("nan"), 0.0, 5.0, -2.0])
    assert r["n"] == 5
    assert r["sd_pct"] == pytest.approx(np.sqrt((9 + 16 + 0 + 25 + 4) / 5))  # about zero: a bias is error too
    assert r["upper_pct"] == pytest.approx(r["sd_pct"] * np.sqrt(5 / chi2.ppf(0.05, 5)))
    assert r["within_3_pct"] == pytest.approx(3 / 5) and r["max_abs_pct"] == 5.0
    with pytest.raises(ReliefError):
        repeatability([1.0])


def test_calibrate_repeatability_takes_a_list_of_recapture_pairs(skin, skin_photo):
    from analyzer.comparison import calibrate_repeatability
    rng = np.random.default_rng(77)
    pairs = []
    for _ in range(2):
        a, b = synth.recapture(rng), synth.recapture(rng)
        pairs.append((skin_photo(skin, a, 1), skin_photo(skin, b, 2), a.px_per_mm))
    r = calibrate_repeatability(pairs)
    assert r["n"] == 2 and r["unaligned"] == 0 and len(r["changes_pct"]) == 2
    assert r["sd_pct"] <= 5.0 and r["upper_pct"] > r["sd_pct"] and r["significant"] == 0


def test_validate_calibrate_reads_a_csv_of_pairs_and_refuses_a_bad_list(tmp_path, skin, skin_photo):
    import subprocess
    import sys

    import cv2
    rng = np.random.default_rng(78)
    rows = []
    for i in range(2):
        a, b = synth.recapture(rng), synth.recapture(rng)
        for name, c, seed in ((f"a{i}.png", a, 1), (f"b{i}.png", b, 2)):
            cv2.imwrite(str(tmp_path / name), np.ascontiguousarray(skin_photo(skin, c, seed)[..., ::-1]))
        rows.append(f"a{i}.png,b{i}.png,{a.px_per_mm}")
    (tmp_path / "pairs.csv").write_text("# baseline,followup,px_per_mm\n" + "\n".join(rows) + "\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "analyzer.validate", "--calibrate", str(tmp_path / "pairs.csv")],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 recapture pairs" in out.stdout and "repeatability SD" in out.stdout
    (tmp_path / "bad.csv").write_text("only_one.png\n")
    bad = subprocess.run([sys.executable, "-m", "analyzer.validate", "--calibrate", str(tmp_path / "bad.csv")],
                         cwd=root, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------- real change
def test_scars_30_percent_shallower_read_smoother_beyond_noise(smoother):
    c = smoother
    assert c.registration.ok
    assert c.change_pct <= -15.0
    assert c.significant
    lo, hi = c.ci95_pct
    assert lo < c.change_pct < hi and hi < 0
    assert c.direction == "smoother"


def test_scars_30_percent_deeper_read_rougher(skin_make, skin_photo, baseline, cap, faithful):
    c = compare_to(skin_make, skin_photo, baseline, cap, faithful, 1.3)
    assert c.change_pct >= 10.0
    assert c.significant and c.ci95_pct[0] > 0
    assert c.direction == "rougher"


def test_change_follows_the_true_scar_band_slope_change(skin_make, smoother):
    true = synth.true_roughness(skin_make(1, 0.6, depth=0.7))["Sdq"] / synth.true_roughness(skin_make(1, 0.6))["Sdq"]
    assert smoother.change_pct == pytest.approx(100 * (true - 1), abs=8.0)


def test_interval_contains_the_change_and_the_mdc_is_positive(identical, smoother):
    for c in (identical, smoother):
        lo, hi = c.ci95_pct
        assert lo <= c.change_pct <= hi
        assert c.mdc_pct > 0
        assert hi - lo == pytest.approx(2 * c.mdc_pct, rel=1e-6)


def test_to_dict_is_plain_json_with_the_documented_keys(smoother):
    d = json.loads(json.dumps(smoother.to_dict(), allow_nan=False))
    assert KEYS <= set(d)
    assert isinstance(d["registration"]["ok"], bool) and d["registration"]["ok"]
    assert len(d["ci95_pct"]) == 2
    assert d["significant"] is True
    assert d["change_pct"] == pytest.approx(smoother.change_pct)
    assert "roughness_index" in d["baseline"] and "roughness_index" in d["followup"]


def test_difference_map_lies_on_the_baseline_grid_and_is_mostly_negative_when_smoother(smoother):
    d = smoother.difference_map
    grid = smoother.baseline.analysis.maps.mask.shape
    assert d.shape == grid == smoother.baseline_grid.shape[:2] == smoother.aligned_followup.shape[:2]
    inside = np.isfinite(d)
    assert np.array_equal(inside, smoother.overlap_mask)
    assert inside.mean() > 0.5
    assert np.mean(d[inside] < 0) > 0.7


def test_scars_made_much_shallower_are_shallower_or_vanished(skin_make, skin_photo, baseline, cap, faithful):
    c = compare_to(skin_make, skin_photo, baseline, cap, faithful, 0.3)
    before = [s for s in c.scar_changes if s["baseline_id"] is not None]
    assert len(before) >= 3
    better = [s["status"] in ("shallower", "vanished") for s in before]
    assert np.mean(better) >= 0.8
    assert c.change_pct <= -40.0
    # A scar no longer detected is below the threshold, not "0 deep": no depth and no -100 % are claimed.
    gone = [s for s in before if s["status"] == "vanished"]
    assert gone  # (scars at 30 % of their depth: some fall below the threshold)
    assert all(math.isnan(s["followup_depth_um"]) and math.isnan(s["depth_change_pct"]) for s in gone)
    assert json.dumps(c.to_dict(), allow_nan=False)  # (NaN is null in the JSON)


def test_metric_changes_cover_the_registry(smoother):
    from analyzer.registry import METRICS

    assert set(smoother.metric_changes) == set(METRICS)
    assert smoother.metric_changes["roughness_index"] < 0


# ---------------------------------------------------------------------------------------------- failures
def test_unrelated_skins_raise_a_registration_error_with_one_line(skin_make, skin_photo, baseline, cap):
    other = skin_photo(skin_make(99, 0.6), cap, 2)
    with pytest.raises(RegistrationError) as err:
        compare(baseline, other, px_per_mm=cap.px_per_mm)
    assert isinstance(err.value, ReliefError)
    msg = str(err.value)
    assert msg and "\n" not in msg


@pytest.mark.parametrize("how", ["not aligned", "a region outside the photo"])
def test_a_refused_comparison_leaves_no_thread_behind(skin, skin_make, skin_photo, baseline, cap, faithful, how):
    # the spare thread of the quality gates outlived an error raised after the registration for as long as the error
    # was kept (a review)
    import threading
    import time

    if how == "not aligned":
        follow, regions, error = skin_photo(skin_make(98, 0.6), cap, 2), None, RegistrationError
    else:
        follow, regions, error = skin_photo(skin, faithful, 2), {"cheek": (10**6, 0, 10, 10)}, ReliefError
    before = set(threading.enumerate())
    with pytest.raises(error) as kept:  # (the error, and its traceback, stay referenced here)
        compare(baseline, follow, px_per_mm=cap.px_per_mm, regions=regions)
    deadline = time.monotonic() + 5.0
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(threading.enumerate()) - before
    assert "outside" in str(kept.value) if regions else "could not align" in str(kept.value)


def test_files_compare_like_arrays(tmp_path, skin, skin_photo, baseline, cap, faithful, smoother, skin_make):
    import cv2

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), np.ascontiguousarray(baseline[..., ::-1]))
    cv2.imwrite(str(b), np.ascontiguousarray(skin_photo(skin_make(1, 0.6, depth=0.7), faithful, 2)[..., ::-1]))
    c = compare(a, str(b), px_per_mm=cap.px_per_mm, followup_px_per_mm=faithful.px_per_mm)
    assert c.change_pct == pytest.approx(smoother.change_pct, abs=0.5)


def _jpeg_from(rgb: np.ndarray, path: Path, make: str | None, model: str | None) -> Path:
    from PIL import Image

    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, "JPEG", quality=95, exif=exif)
    return path


def test_photos_from_two_cameras_are_not_taken_alike(tmp_path, skin, skin_photo, baseline, cap, faithful):
    """Each phone sharpens and tone-maps in its own way, which the index reads as relief (validate section 12): a
    follow-up from another camera (EXIF make and model) is a difference; the same camera, or an unknown one, is not."""
    follow = skin_photo(skin, faithful, 2)
    a = _jpeg_from(baseline, tmp_path / "a.jpg", "Apple", "iPhone 13")
    same = _jpeg_from(follow, tmp_path / "same.jpg", "Apple", "iPhone 13")
    other = _jpeg_from(follow, tmp_path / "other.jpg", "samsung", "SM-S911B")
    unknown = _jpeg_from(follow, tmp_path / "unknown.jpg", None, None)
    kw = dict(px_per_mm=cap.px_per_mm, followup_px_per_mm=faithful.px_per_mm)
    c = compare(a, other, **kw)
    assert c.baseline.camera == "Apple iPhone 13" and c.followup.camera == "samsung SM-S911B"
    [diff] = [d for d in c.consistency["differences"] if "camera" in d]
    assert "(samsung SM-S911B) than the baseline (Apple iPhone 13)" in diff and not c.consistency["taken_alike"]
    for follow_file in (same, unknown):
        c = compare(a, follow_file, **kw)
        assert not any("camera" in d for d in c.consistency["differences"]), c.consistency["differences"]
        # ... but a follow-up without camera data (a copy?) cannot be checked, and the advice says so
        unchecked = [x for x in c.consistency["advice"] if "no camera make and model" in x]
        assert len(unchecked) == (follow_file == unknown), c.consistency["advice"]
    assert "the follow-up photo carries" in unchecked[0] and "(Apple iPhone 13)" in unchecked[0]
    c = compare(unknown, unknown, **kw)  # neither has any: nothing to compare, nothing said
    assert not any("camera" in x for x in c.consistency["advice"] + c.consistency["differences"])
    # files whose metadata was removed (stored uploads): the cameras read at upload are given instead
    c = compare(a, unknown, cameras=("Apple iPhone 13", "Google Pixel 8"), **kw)
    assert any("another camera (Google Pixel 8)" in d for d in c.consistency["differences"])
    assert c.to_dict()["consistency"]["cameras"] == ["Apple iPhone 13", "Google Pixel 8"]
    with pytest.raises(ReliefError, match="cameras must be"):
        compare(a, unknown, cameras="Apple", **kw)


def test_regions_restrict_the_comparison_and_report_each_region():
    root = Path(__file__).resolve().parents[1] / "sample_images"
    boxes = {"upper left": (150, 150, 800, 500), "lower left": (150, 1000, 800, 500)}
    c = compare(root / "week00_baseline.jpg", root / "week12.jpg", regions=boxes)
    assert set(c.region_changes) == set(boxes)
    for name, rc in c.region_changes.items():
        lo, hi = rc["ci95_pct"]
        assert rc["change_pct"] < -10 and lo < rc["change_pct"] < hi, name  # week 12: scars 35 % shallower
        # Each region's verdict and MDC: the repeatability of a recapture is part of every region's noise.
        assert rc["mdc_pct"] >= 1.96 * REPEATABILITY_SD_PCT and hi - lo == pytest.approx(2 * rc["mdc_pct"])
        assert rc["significant"] and abs(rc["change_pct"]) > rc["mdc_pct"], name
    assert json.loads(json.dumps(c.to_dict()))["region_changes"].keys() == boxes.keys()
    # Week 1 (only inflammation, no remodelling yet): no region is called changed.
    early = compare(root / "week00_baseline.jpg", root / "week01.jpg", regions=boxes)
    assert not any(rc["significant"] for rc in early.region_changes.values())
    assert all(abs(rc["change_pct"]) < rc["mdc_pct"] for rc in early.region_changes.values())


def test_files_compare_like_arrays_when_only_the_baseline_has_a_scale(tmp_path):
    """A small field (20 mm, a 200 px analysis grid): the baseline with a given scale is decoded reduced by
    libjpeg; the follow-up, without a scale of its own, must go through the same decode — reusing its full-size
    decode instead once cost the feature matching a quarter of its inliers and the pair was refused."""
    import cv2

    cap = synth.Capture(out_px=(600, 400), field_mm=20.0)
    skin = synth.make_skin(seed=1, severity=0.7, size_mm=(24.0, 18.0), px_per_mm=cap.px_per_mm)
    before = synth.render(skin, cap, seed=0)
    after = synth.render(synth.scale_scars(skin, 0.4), cap, seed=1)
    paths = []
    for name, rgb in (("a.jpg", before), ("b.jpg", after)):
        cv2.imwrite(str(tmp_path / name), np.ascontiguousarray(rgb[..., ::-1]))
        paths.append(str(tmp_path / name))
    from_files = compare(*paths, px_per_mm=cap.px_per_mm)
    from_arrays = compare(*(cv2.imread(p)[..., ::-1] for p in paths), px_per_mm=cap.px_per_mm)
    assert from_files.change_pct == pytest.approx(from_arrays.change_pct, abs=1.0)
    assert from_files.change_pct < -30 and from_files.significant


def test_the_repeatability_behind_every_verdict_is_the_documented_calibration():
    """The constant is the upper 95 % limit of the RMS drift on 30 calibration pairs, rounded up (README and
    docs/method.md state it): a smaller one would call ordinary recapture noise a change. Unchanged recaptures
    keep an MDC of at least 1.96 times it."""
    root = Path(__file__).resolve().parents[1]
    assert REPEATABILITY_SD_PCT == 4.5
    assert "constant **4.5 %**" in (root / "README.md").read_text(encoding="utf-8")
    assert "rounded up to 4.5 %" in (root / "docs" / "method.md").read_text(encoding="utf-8")
    cap = synth.Capture(out_px=(900, 600), field_mm=45.0)
    skin = synth.make_skin(seed=5, severity=0.6, size_mm=(50.0, 35.0), px_per_mm=cap.px_per_mm)
    c = compare(synth.render(skin, cap, seed=0), synth.render(skin, cap, seed=1), px_per_mm=cap.px_per_mm)
    assert c.mdc_pct >= 1.96 * 4.5 and not c.significant
