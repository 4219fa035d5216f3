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


def test_validate_quick_prints_the_four_headline_figures(quick_run, ranking, recaptures):
    out, err = quick_run.communicate(timeout=300)
    assert quick_run.returncode == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    for n in "1234":
        assert any(line.startswith(f"{n}. ") for line in lines), out
    # the printed figures are the library's (same seeds)
    rho = float(re.search(r"Spearman rho = ([-0-9.]+)", out).group(1))
    assert rho == pytest.approx(ranking["spearman"], abs=1e-3) and rho >= 0.95
    assert re.search(r"called significant: (\d+)", out).group(1) == str(recaptures["significant"])
    assert "significant improvement in 2/2" in out
