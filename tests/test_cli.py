"""The command line, end to end: ``python -m analyzer measure|compare|card`` as a subprocess on files written from
skins rendered by analyzer.synth, and every user mistake answered with one line and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.registry import METRICS

ROOT = Path(__file__).resolve().parents[1]
MEASURE_KEYS = {"roughness_index", "metrics", "scars", "quality", "px_per_mm", "scale_source"}
COMPARE_KEYS = {"baseline", "followup", "change_pct", "ci95_pct", "mdc_pct", "significant", "registration"}


def run(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def write_jpeg(path: Path, rgb: np.ndarray, quality=95) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, skin_make, skin_photo, skin_small_capture):
    d = tmp_path_factory.mktemp("cli")
    cap = skin_small_capture
    base = write_jpeg(d / "baseline.jpg", skin_photo(skin_make(1, 0.6), cap, 1))
    follow = write_jpeg(d / "week12.jpg", skin_photo(skin_make(1, 0.6, depth=0.7), cap, 2))
    other = write_jpeg(d / "other.jpg", skin_photo(skin_make(99, 0.6), cap, 2))
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("this is not a photo\n")
    data = base.read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(d / "tiny.png"), np.full((50, 50, 3), 128, np.uint8))
    (d / "folder.jpg").mkdir()
    return {"dir": d, "base": base, "follow": follow, "other": other, "px": cap.px_per_mm}


def assert_one_line_error(res: subprocess.CompletedProcess):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:")
    assert res.stdout == ""


# ----------------------------------------------------------------------------------------------- success
def test_measure_json_prints_one_json_object_with_the_documented_keys(files):
    res = run("measure", files["base"], "--px-per-mm", files["px"], "--json")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1
    d = json.loads(res.stdout)
    assert MEASURE_KEYS <= set(d)
    assert set(d["metrics"]) == set(METRICS)
    assert d["scale_source"] == "given" and d["px_per_mm"] == pytest.approx(files["px"])
    assert d["roughness_index"] > 0
    assert {"ok", "warnings"} <= set(d["quality"])


def test_measure_json_matches_the_library(files):
    from analyzer import measure

    res = run("measure", files["base"], "--px-per-mm", files["px"], "--roi", "0,0,450,600", "--json")
    assert res.returncode == 0, res.stderr
    lib = measure(files["base"], px_per_mm=files["px"], roi=(0, 0, 450, 600))
    assert json.loads(res.stdout)["roughness_index"] == pytest.approx(lib.roughness_index, rel=1e-9)


def test_measure_without_json_prints_a_readable_summary(files):
    res = run("measure", files["base"])
    assert res.returncode == 0, res.stderr
    assert "Roughness index" in res.stdout
    assert "60 mm" in res.stdout  # the default-scale warning is shown
    for name in ("scar_density", "fine_texture_index"):
        assert name in res.stdout


def test_compare_json_prints_one_json_object_with_the_documented_keys(files):
    res = run("compare", files["base"], files["follow"], "--px-per-mm", files["px"], "--json")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1
    d = json.loads(res.stdout)
    assert COMPARE_KEYS <= set(d)
    assert d["registration"]["ok"] is True
    assert d["change_pct"] < -15 and d["significant"] is True


def test_compare_without_json_prints_the_verdict(files):
    res = run("compare", files["base"], files["follow"])
    assert res.returncode == 0, res.stderr
    assert "Change of roughness" in res.stdout and "smoother" in res.stdout


def test_card_writes_a_pdf(tmp_path):
    out = tmp_path / "x.pdf"
    res = run("card", "--out", out)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:4] == b"%PDF"
    assert str(out) in res.stdout


def test_help_lists_the_subcommands():
    res = run("--help")
    assert res.returncode == 0
    for sub in ("measure", "compare", "card"):
        assert sub in res.stdout


# ------------------------------------------------------------------------------------------------ errors
#: case -> (arguments, words the error line must contain)
ERRORS = {
    "missing file": (lambda f: ["measure", f["dir"] / "nope.jpg"], "nope.jpg"),
    "directory": (lambda f: ["measure", f["dir"] / "folder.jpg"], "folder.jpg"),
    "empty file": (lambda f: ["measure", f["dir"] / "empty.jpg"], "empty.jpg"),
    "text named .jpg": (lambda f: ["measure", f["dir"] / "notes.jpg"], "notes.jpg"),
    "truncated JPEG": (lambda f: ["measure", f["dir"] / "truncated.jpg"], "truncated.jpg"),
    "tiny image": (lambda f: ["measure", f["dir"] / "tiny.png"], "50"),
    "roi of three numbers": (lambda f: ["measure", f["base"], "--roi", "1,2,3"], "ROI"),
    "roi outside": (lambda f: ["measure", f["base"], "--roi", "800,500,300,300"], "ROI"),
    "px-per-mm not a number": (lambda f: ["measure", f["base"], "--px-per-mm", "x"], "px-per-mm"),
    "px-per-mm zero": (lambda f: ["measure", f["base"], "--px-per-mm", "0"], "px_per_mm"),
    "px-per-mm negative": (lambda f: ["measure", f["base"], "--px-per-mm", "-1"], "px_per_mm"),
    "px-per-mm nan": (lambda f: ["measure", f["base"], "--px-per-mm", "nan"], "px_per_mm"),
    "px-per-mm absurd": (lambda f: ["measure", f["base"], "--px-per-mm", "1e9"], "px_per_mm"),
    "roi too small": (lambda f: ["measure", f["base"], "--roi", "0,0,10,10"], "200"),
    "roi infinite": (lambda f: ["measure", f["base"], "--roi", "inf,0,10,10"], "ROI"),
    "unknown subcommand": (lambda f: ["measur", f["base"]], "measur"),
    "no subcommand": (lambda f: [], "error"),
    "missing photo argument": (lambda f: ["measure"], "photo"),
    "compare missing follow-up": (lambda f: ["compare", f["base"], f["dir"] / "nope.jpg"], "nope.jpg"),
    "compare unrelated skins": (lambda f: ["compare", f["base"], f["other"], "--px-per-mm", f["px"]], "align"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_mistakes_give_one_line_naming_the_problem_and_exit_code_2(files, case):
    args, words = ERRORS[case]
    res = run(*args(files))
    assert_one_line_error(res)
    assert words in res.stderr


def test_a_reader_closing_the_pipe_is_not_an_error():
    res = subprocess.run(f"{sys.executable} -m analyzer measure sample_images/week06.jpg | head -1", shell=True,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stdout.startswith("Roughness index") and "error" not in res.stderr


def _tiff_with_odd_metadata() -> bytes:
    """A readable TIFF whose PlanarConfiguration tag claims 95 values: Pillow reads it with a warning."""
    import io
    import struct

    from PIL import Image

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 200, (300, 400, 3), dtype=np.uint8)).save(buf, format="TIFF")
    b = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", b, 4)[0]
    for i in range(struct.unpack_from("<H", b, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", b, entry)[0] == 284:
            struct.pack_into("<I", b, entry + 4, 95)
            return bytes(b)
    raise AssertionError("Pillow wrote no PlanarConfiguration tag")


def test_library_warnings_do_not_reach_the_user(tmp_path):
    """Pillow's notes on odd metadata printed four lines of warnings with site-packages paths (and its logger
    two lines before an error): the command's own output is all the user sees."""
    odd = tmp_path / "odd.tif"
    odd.write_bytes(_tiff_with_odd_metadata())
    r = run("measure", odd, "--px-per-mm", "10")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "Roughness index" in r.stdout


def test_an_unexpected_failure_is_one_line_and_exit_2_not_a_traceback(monkeypatch, capsys):
    """The last resort of every command: a bug (here a RuntimeError from deep inside) reaches the user as one
    line that says what to report, never as a traceback."""
    from analyzer import cli

    def broken(args):
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(cli, "_run", broken)
    assert cli.main(["measure", "whatever.jpg"]) == cli.EXIT_ERROR == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: internal error (RuntimeError: something unforeseen) — please report it")
