"""Black-and-white photos (issue 9, item 5): measured with a warning that colour marks cannot be told apart from
relief and NaN pigment metrics; a comparison of a black-and-white and a colour photo compares both in black and
white and says so. Photos are rendered by analyzer.synth with redness and freckles, so the colour copy has pigment
to measure."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer import comparison, compare, measure
from analyzer.measurement import GRAYSCALE_WARNING, PIGMENT_METRICS, gray_copy, is_grayscale
from analyzer.registry import METRICS

ROOT = Path(__file__).resolve().parents[1]


def to_gray_u8(rgb: np.ndarray) -> np.ndarray:
    """Single-channel black-and-white copy as a camera or editor makes it (Rec. 601 luma)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def write_jpeg(path: Path, img: np.ndarray, quality: int = 92) -> Path:
    bgr = img if img.ndim == 2 else np.ascontiguousarray(img[..., ::-1])
    assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


@pytest.fixture(scope="module")
def cap(skin_small_capture):
    return skin_small_capture


@pytest.fixture(scope="module")
def colour_photo(skin_make, skin_photo, cap):
    return skin_photo(skin_make(3, 0.6, freckles=12, redness=0.6), cap, 1)


@pytest.fixture(scope="module")
def follow_photo(skin_make, skin_photo, cap):
    faithful = dataclasses.replace(cap, center_mm=(30.5, 22.8), rotation_deg=2.0)
    return skin_photo(skin_make(3, 0.6, depth=0.7, freckles=12, redness=0.6), faithful, 2)


def test_the_pigment_metrics_are_the_registry_s_colour_metrics():
    assert set(PIGMENT_METRICS) == {n for n, m in METRICS.items() if m.band is None}


def test_detector_tells_black_and_white_from_colour_skin(colour_photo, tmp_path):
    rgb = colour_photo.astype(np.float32) / 255
    assert not is_grayscale(rgb)
    assert is_grayscale(gray_copy(rgb))
    # a gray photo stored as a three-channel JPEG: R = G = B only within JPEG noise
    path = write_jpeg(tmp_path / "bw3.jpg", np.repeat(to_gray_u8(colour_photo)[..., None], 3, axis=2), 80)
    assert is_grayscale(cv2.imread(str(path)).astype(np.float32) / 255)
    # a pale, barely saturated skin (a third of the chroma) is still colour
    pale = 0.35 * rgb + 0.65 * gray_copy(rgb)
    assert not is_grayscale(pale)


def test_colour_photo_has_pigment_metrics_and_no_black_and_white_warning(colour_photo, cap):
    m = measure(colour_photo, px_per_mm=cap.px_per_mm)
    assert all(math.isfinite(m.metrics[k]) for k in PIGMENT_METRICS)
    assert GRAYSCALE_WARNING not in m.warnings
    assert not m.analysis.grayscale


@pytest.mark.parametrize("form", ["array (H, W)", "gray JPEG", "RGB JPEG of a gray photo"])
def test_black_and_white_photo_is_measured_with_a_warning_and_nan_pigment(colour_photo, cap, tmp_path, form):
    gray = to_gray_u8(colour_photo)
    if form == "array (H, W)":
        src = gray
    elif form == "gray JPEG":
        src = write_jpeg(tmp_path / "bw.jpg", gray)
    else:
        src = write_jpeg(tmp_path / "bw3.jpg", np.repeat(gray[..., None], 3, axis=2))
    m = measure(src, px_per_mm=cap.px_per_mm)
    assert m.analysis.grayscale
    assert all(math.isnan(m.metrics[k]) for k in PIGMENT_METRICS)
    assert math.isfinite(m.roughness_index) and m.roughness_index > 0
    assert GRAYSCALE_WARNING in m.warnings and "take the photo in colour" in GRAYSCALE_WARNING
    assert all(v is None for k, v in m.to_dict()["metrics"].items() if k in PIGMENT_METRICS)


def test_black_and_white_against_colour_is_compared_in_black_and_white_and_says_so(colour_photo, follow_photo, cap):
    gray_base = to_gray_u8(colour_photo)
    mixed = compare(gray_base, follow_photo, px_per_mm=cap.px_per_mm)
    both_gray = compare(gray_base, to_gray_u8(follow_photo), px_per_mm=cap.px_per_mm)
    # the colour follow-up was turned to black and white the same way: the same answer as two gray photos
    assert mixed.change_pct == pytest.approx(both_gray.change_pct, abs=0.5)
    assert mixed.change_pct < -5  # scars 30 % shallower still read as smoother (-12 %: freckles count as relief)
    assert mixed.consistency["grayscale"] and both_gray.consistency["grayscale"]
    notes = [a for a in mixed.consistency["advice"] if "black-and-white" in a]
    assert len(notes) == 1 and "baseline" in notes[0] and "take every photo in colour" in notes[0]
    assert not mixed.consistency["ok"]
    assert not any("black-and-white" in a for a in both_gray.consistency["advice"])  # no mismatch to report
    assert GRAYSCALE_WARNING in mixed.baseline.warnings and GRAYSCALE_WARNING not in mixed.followup.warnings
    assert all(math.isnan(mixed.metric_changes[k]) for k in PIGMENT_METRICS)
    assert all(math.isnan(mixed.followup.metrics[k]) for k in PIGMENT_METRICS)


def test_two_colour_photos_are_not_compared_in_black_and_white(colour_photo, follow_photo, cap):
    c = compare(colour_photo, follow_photo, px_per_mm=cap.px_per_mm)
    assert not c.consistency["grayscale"]
    assert all(math.isfinite(c.followup.metrics[k]) for k in PIGMENT_METRICS)


@pytest.mark.parametrize("follow_gray", [False, True], ids=["colour follow-up", "black-and-white follow-up"])
def test_a_wrong_early_guess_of_black_and_white_changes_nothing(colour_photo, follow_photo, cap, monkeypatch,
                                                                 follow_gray):
    # compare analyses the baseline while it warps the follow-up, guessing from the unwarped follow-up whether it
    # is black-and-white; on a wrong guess the baseline must be analysed again, to the same figures.
    follow = to_gray_u8(follow_photo) if follow_gray else follow_photo
    right = compare(colour_photo, follow, px_per_mm=cap.px_per_mm)
    monkeypatch.setattr(comparison, "_grayscale_guess", lambda grid_f, valid_f: not follow_gray)
    guessed_wrong = compare(colour_photo, follow, px_per_mm=cap.px_per_mm)
    assert right.consistency["grayscale"] is follow_gray is guessed_wrong.consistency["grayscale"]
    assert guessed_wrong.change_pct == right.change_pct
    assert guessed_wrong.baseline.metrics == pytest.approx(right.baseline.metrics, nan_ok=True, rel=0, abs=0)
    assert guessed_wrong.baseline.analysis.grayscale is follow_gray


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_says_it_in_one_line_and_succeeds(colour_photo, follow_photo, cap, tmp_path):
    gray = write_jpeg(tmp_path / "bw.jpg", to_gray_u8(colour_photo))
    colour = write_jpeg(tmp_path / "colour.jpg", follow_photo)
    res = run("measure", gray, "--px-per-mm", cap.px_per_mm)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "colour" in ln and "black-and-white" in ln]
    assert len(lines) == 1 and lines[0].strip().startswith("!") and lines[0].rstrip().endswith("take the photo in colour")
    assert "melanin_unevenness" in res.stdout and "n/a" in res.stdout

    res = run("compare", gray, colour, "--px-per-mm", cap.px_per_mm)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    notes = [ln for ln in res.stdout.splitlines() if "compared in black and white" in ln]
    assert len(notes) == 1 and notes[0].strip().startswith("!")

    res = run("compare", gray, colour, "--px-per-mm", cap.px_per_mm, "--json")
    d = json.loads(res.stdout)
    assert d["consistency"]["grayscale"] is True
    assert d["metric_changes"]["erythema_index"] is None
