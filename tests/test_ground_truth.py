"""Accuracy against the synthetic ground truth: analyzer.validate's figures with few renders, and
``python -m analyzer.validate --quick`` end to end. These are the numbers the README and compare's
REPEATABILITY_SD_PCT rest on."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer import validate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def quick_run():
    """``python -m analyzer.validate --quick`` started at once, so it runs beside the in-process checks."""
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.validate", "--quick"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def ranking():
    return validate.severity_ranking(n=6)


@pytest.fixture(scope="module")
def recaptures():
    return validate.recapture_spread(n=3)


@pytest.fixture(scope="module")
def shallower():
    return validate.shallower_detection(n=2)


@pytest.fixture(scope="module")
def pigment():
    return validate.pigment_invariance()


@pytest.fixture(scope="module")
def scar_colour():
    return validate.scar_colour(n=1)


@pytest.fixture(scope="module")
def held_out():
    return validate.held_out_spread(n=4)


def test_roughness_index_ranks_severities_like_the_true_relief(ranking):
    assert len(ranking["index"]) == len(ranking["true_Sdq"]) == 6
    assert np.all(np.diff(ranking["true_Sdq"]) > 0)  # the truth itself grows with severity
    assert ranking["spearman"] >= 0.95


def test_recaptures_of_unchanged_skin_stay_within_5_percent_and_none_is_significant(recaptures):
    assert recaptures["n"] == 3
    assert recaptures["max_abs_pct"] <= 5.0, recaptures["changes_pct"]
    assert recaptures["significant"] == 0


def test_scars_30_percent_shallower_are_significant_improvements(shallower):
    assert shallower["significant_improvement"] == shallower["n"] == 2
    for got, true in zip(shallower["changes_pct"], shallower["true_change_pct"]):
        assert got < -15.0
        assert got == pytest.approx(true, abs=10.0)


def test_pigment_only_edits_move_the_index_by_at_most_5_percent(pigment):
    assert set(pigment) == {"freckles", "redness"}
    for name, change in pigment.items():
        assert abs(change) <= 5.0, name


def test_fading_colour_inside_unchanged_scars_moves_the_index_by_at_most_3_percent(scar_colour):
    assert set(scar_colour["fade_pct"]) == {"red", "brown"}
    for name, changes in scar_colour["fade_pct"].items():
        assert len(changes) == 1 and abs(changes[0]) <= 3.0, name
    assert scar_colour["fade_significant"] == 0, scar_colour["fade_recapture_pct"]


def test_twice_the_colour_inside_unchanged_scars_fading_is_never_called_significant():
    # (the README quotes this figure; validate prints it as section 7b.) Within 3 % up to algorithm 1.2; since 1.3
    # smooths the subtracted chroma over the photo's own pixels (what real photos' JPEG chroma needs: their index
    # moved by up to 10 % when saved again, now ≤ 4.5 %), twice the validation's brown pit colour fading reads up
    # to -5.9 % on the four skins (this one: red -2.8 %, brown -4.0 %). The validation's own colour stays ≤ 3 %.
    r = validate.scar_colour(n=1, strength=2.0, shallower=False)
    for name, changes in r["fade_pct"].items():
        assert all(abs(c) <= 6.0 for c in changes), (name, changes)
    assert r["fade_significant"] == 0, r["fade_recapture_pct"]


def test_scars_30_percent_shallower_read_the_same_with_and_without_their_colour(scar_colour):
    assert scar_colour["shallower_plain_pct"][0] < -15.0  # a real improvement to read
    for name, gaps in scar_colour["shallower_gap_pts"].items():
        assert abs(gaps[0]) <= 3.0, (name, scar_colour["shallower_coloured_pct"][name])


def test_unchanged_pairs_held_apart_from_the_calibration_are_not_called_significant(held_out):
    # Second noise model, seeds the calibration of REPEATABILITY_SD_PCT never saw (full run: 0 of 20).
    assert held_out["n"] + held_out["unaligned"] == 4 and held_out["n"] >= 3
    assert held_out["significant"] == 0, held_out["changes_pct"]
    assert held_out["max_abs_pct"] <= 8.0


def test_a_phones_contrast_change_is_read_on_the_card_flagged_and_not_taken_for_the_skin():
    """The follow-up of unchanged skin put through a tone curve v ** 1.07: the card's grey steps read it, the
    comparison says the photos were not taken alike, and the index — corrected with the card — stays within 1.5
    points of the unprocessed follow-up's (uncorrected it moved by about what the card reads, +5 to +7);
    unprocessed, no contrast flag."""
    r = validate.contrast_on_card(n=2, tones=(1.0, 1.07), veils=(), processing=())
    for i in range(2):
        plain, toned = r["change_pct"][1.0][i], r["change_pct"][1.07][i]
        assert abs(r["tone_change_pct"][1.0][i]) < 1.5
        assert 5.0 < r["tone_change_pct"][1.07][i] < 9.0
        assert toned == pytest.approx(plain, abs=1.5)
    assert r["flagged"] == {1.0: 0, 1.07: 2}


def test_with_the_card_a_phones_changing_tone_curve_is_taken_out_of_held_out_unchanged_pairs():
    """Held-out pairs of the second noise model with the card in both photos and only the phone's tone curve
    drifting (exponent 0.97-1.03 per photo): corrected with the card, unchanged skin reads within 2 % (as taken,
    the curve alone moved these pairs by up to 4.4 %, RMS 2.6 % over 8) and nothing is called significant."""
    r = validate.held_out_with_card(n=4, drift="tone curve")
    assert r["n"] == 4 and r["significant"] == 0
    assert max(abs(c) for c in r["changes_pct"]) < 2.0, r["changes_pct"]
    assert r["rms"] < 0.6 * r["rms_uncorrected"], (r["changes_pct"], r["uncorrected_pct"])


def test_local_processing_moves_the_index_more_than_the_cards_grey_steps_read():
    """Recorded, not hidden (README "What a 2-D photo cannot tell"): the card's grey steps measure a tone curve, not a
    local gain, so the correction with the card leaves most of a local-contrast boost of 0.2 in the index (still
    above 5 %: flagged); sharpening, which raises the index as much, is neither flagged nor corrected."""
    r = validate.contrast_on_card(n=2, tones=(), veils=(), processing=(("local contrast 3 mm", 0.2),
                                                                       ("sharpen 0.1 mm", 1.0)))
    lc, sh = "local contrast 3 mm 0.2", "sharpen 0.1 mm 1"
    for i in range(2):
        assert r["change_pct"][lc][i] > 5.0 and r["tone_change_pct"][lc][i] > 5.0
        assert r["change_pct"][sh][i] > 5.0 and abs(r["tone_change_pct"][sh][i]) < 1.5
    assert r["flagged"] == {lc: 2, sh: 0}


def test_the_drift_budget_takes_the_held_out_spread_apart_one_drift_at_a_time():
    """Two renders of one capture differ by their noise only; the phone's tone curve alone moves unchanged skin by
    its exponent (0.97-1.03 on each photo); an unknown drift is refused in one line."""
    r = validate.drift_budget(n=3, drifts=["none", "tone curve"])
    assert set(r) == {"none", "tone curve"} and set(r["none"]) == {"rms_pct", "max_abs_pct", "within_3", "n"}
    assert r["none"]["rms_pct"] < 1.5 and r["none"]["within_3"] == 1.0
    assert r["tone curve"]["rms_pct"] > r["none"]["rms_pct"]
    assert set(validate.DRIFTS) >= {"tone curve", "blur", "lamp height ±0.5°", "second JPEG"}
    # one drift at a time: the tone curve's photos are the no-drift photos through one pointwise curve (the
    # same renders, no second JPEG, no sharpening); the second JPEG's are not
    [(a0, b0, _)] = validate.calibration_pairs(n=1, seed=8000, drift="none")
    [(a1, _, _)] = validate.calibration_pairs(n=1, seed=8000, drift="tone curve")
    [(a2, _, _)] = validate.calibration_pairs(n=1, seed=8000, drift="second JPEG")
    def off_curve(x, y):  # largest distance of y from the best pointwise curve of x (codes)
        curve = np.bincount(x.ravel(), y.ravel().astype(float), 256) / np.maximum(np.bincount(x.ravel(), None, 256), 1)
        return np.abs(y - curve[x]).max()

    assert off_curve(a0, a1) <= 1.0 and not np.array_equal(a0, a1)  # (±1: the YCbCr round trip's rounding)
    assert off_curve(a0, a2) > 4.0
    with pytest.raises(validate.OptionError, match="not one of the second model's"):
        validate.drift_budget(n=1, drifts=["sunlight"])


def test_validate_quick_prints_the_four_headline_figures(quick_run, ranking, recaptures):
    out, err = quick_run.communicate(timeout=300)
    assert quick_run.returncode == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    for n in range(1, 12):  # 1-8 on renders, 9-11 on the real photos in tests/data/real/
        assert any(line.startswith(f"{n}. ") for line in lines), (n, out)
    # the printed figures are the library's (same seeds)
    rho = float(re.search(r"Spearman rho = ([-0-9.]+)", out).group(1))
    assert rho == pytest.approx(ranking["spearman"], abs=1e-3) and rho >= 0.95
    assert re.search(r"called significant: (\d+)", out).group(1) == str(recaptures["significant"])
    assert "significant improvement in 2/2" in out
    assert re.search(r"6b\. .*\n   p = 0\.96\s*: .*flagged \d/1", out)
    assert "fading colour called significant: 0 of 2" in out
    upper = float(re.search(r"upper 95 % limit ([0-9.]+) %", out).group(1))
    assert upper > 0 and f"REPEATABILITY_SD_PCT = {validate.REPEATABILITY_SD_PCT:.1f} %" in out
    assert re.search(r"held-out unchanged pairs called significant: 0/\d+", out)
