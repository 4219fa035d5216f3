"""``python -m analyzer batch``, end to end as a subprocess: a folder of small rendered photos (analyzer.synth, 600 x
400 px at 30 px/mm) with a nested folder, a truncated JPEG and a text file named .jpg; one row per photo, the same
numbers as ``measure --json``, resuming, ``--jobs 2`` and a real Dask ``LocalCluster`` giving the same rows,
``--compare`` by name, and bad usage answered with one line and exit code 2."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer import synth
from analyzer.batch import COMPARE_COLUMNS, MEASURE_COLUMNS
from analyzer.registry import ALGORITHM_VERSION, METRICS

ROOT = Path(__file__).resolve().parents[1]
PX = 30.0
CAPTURE = synth.Capture(out_px=(600, 400), field_mm=20.0)
#: Columns that differ between two runs over the same files by design.
VOLATILE = {"measured_at"}


def run(*args, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def by_file(rows: list[dict], key="file") -> dict[str, dict]:
    out = {r[key]: r for r in rows}
    assert len(out) == len(rows), "a file appears twice"
    return out


#: Pairs to compare show 30 x 20 mm: on a 20 mm field (200 x 133 analysis pixels) a follow-up without its own scale
#: is at the edge of what the feature matching aligns (10-14 inliers).
PAIR_CAPTURE = synth.Capture(out_px=(900, 600), field_mm=30.0)


def photo(seed: int, *, depth: float = 1.0, noise_seed: int = 0, capture: synth.Capture = CAPTURE) -> np.ndarray:
    size = (capture.field_mm * 1.2, capture.field_mm * 0.9)
    skin = synth.make_skin(seed=seed, severity=0.7, size_mm=size, px_per_mm=capture.px_per_mm)
    if depth != 1.0:
        skin = synth.scale_scars(skin, depth)
    return synth.render(skin, capture, seed=noise_seed)


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("batch") / "photos"
    good = [write(d / "p01.jpg", photo(1)), write(d / "p02.png", photo(2)),
            write(d / "visit2" / "deeper" / "p03.jpg", photo(3))]
    data = good[0].read_bytes()
    broken = d / "visit2" / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])
    text = d / "notes.jpg"
    text.write_text("this is not a photo\n")
    (d / "p01.json").write_text("{}")  # sidecars and other files are not photos: no row
    (d / "README.txt").write_text("clinic archive")
    return {"dir": d, "good": good, "bad": [broken, text]}


@pytest.fixture(scope="module")
def first_run(folder, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("out1") / "results.csv"
    res = run("batch", folder["dir"], "--out", out, "--px-per-mm", PX)
    assert res.returncode == 0, res.stderr
    header, rows = read_rows(out)
    return {"out": out, "res": res, "header": header, "rows": rows}


def numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE}


# ---------------------------------------------------------------------------------------------------- one run
def test_one_row_per_photo_including_nested_and_bad_files(folder, first_run):
    rows = by_file(first_run["rows"])
    expected = {str(p.resolve()) for p in folder["good"] + folder["bad"]}
    assert set(rows) == expected
    assert first_run["header"] == list(MEASURE_COLUMNS)
    assert first_run["header"][:2] == ["file", "roughness_index"]
    assert set(METRICS) <= set(first_run["header"])
    for p in folder["good"]:
        r = rows[str(p.resolve())]
        assert r["error"] == ""
        assert float(r["roughness_index"]) > 0
        assert float(r["px_per_mm"]) == pytest.approx(PX)
        assert r["scale_source"] == "given"
        assert r["quality_ok"] in ("True", "False")
        assert r["algorithm_version"] == ALGORITHM_VERSION
    assert "truncated or corrupt" in rows[str(folder["bad"][0].resolve())]["error"]
    assert "not an image" in rows[str(folder["bad"][1].resolve())]["error"]
    for p in folder["bad"]:
        assert rows[str(p.resolve())]["roughness_index"] == ""


def test_every_csv_line_is_one_row_and_the_run_is_quiet_off_a_terminal(first_run):
    lines = first_run["out"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(first_run["rows"])  # no message spills over a line
    res = first_run["res"]
    assert res.stderr == ""  # no progress bar when stderr is not a terminal
    assert res.stdout.strip() == f"5 photos measured (2 with errors), 0 already in {first_run['out']}; 5 rows"


def test_numbers_are_those_of_measure_json(folder, first_run):
    rows = by_file(first_run["rows"])
    for p in folder["good"]:
        res = run("measure", p, "--px-per-mm", PX, "--json")
        assert res.returncode == 0, res.stderr
        want = json.loads(res.stdout)
        got = rows[str(p.resolve())]
        for name in METRICS:
            v = want["metrics"][name]
            assert (got[name] == "" and v is None) or float(got[name]) == v, name
        assert float(got["px_per_mm"]) == want["px_per_mm"]
        assert (got["quality_ok"] == "True") == want["quality"]["ok"]
        assert got["warnings"] == " | ".join(want["quality"]["warnings"])


# ------------------------------------------------------------------------------------------------- resuming
def test_second_run_measures_nothing_new_and_a_changed_photo_is_measured_again(folder, tmp_path):
    d = tmp_path / "photos"
    shutil.copytree(folder["dir"], d)
    out = tmp_path / "results.csv"
    assert run("batch", d, "--out", out, "--px-per-mm", PX).returncode == 0
    _, before = read_rows(out)
    os.utime(d / "p01.jpg", (1e9, 1e9))  # a new modification time, same content: still measured

    res = run("batch", d, "--out", out, "--px-per-mm", PX)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0 photos measured (0 with errors), 5 already in")
    _, again = read_rows(out)
    assert again == before  # same measured_at (ms): nothing was measured again

    changed = write(d / "p02.png", photo(2, depth=0.5))  # same name and path, new content
    res = run("batch", d, "--out", out, "--px-per-mm", PX)
    assert res.stdout.startswith("1 photos measured (0 with errors), 4 already in")
    rows, old = by_file(read_rows(out)[1]), by_file(before)
    assert set(rows) == set(old)  # still one row per file
    key = str(changed.resolve())
    assert rows[key]["sha256"] != old[key]["sha256"]
    assert float(rows[key]["roughness_index"]) < float(old[key]["roughness_index"])  # shallower scars
    assert all(rows[k] == old[k] for k in rows if k != key)


def test_a_file_name_that_is_not_utf8_is_measured_and_the_run_resumes(folder, tmp_path):
    # (a Latin-1 name from a Windows share or a zip stopped every run with an internal error, before its row, so
    # the photos after it were never measured)
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(folder["good"][0], d / "a.jpg")
    shutil.copy(folder["good"][0], os.path.join(os.fsencode(d), b"b\xff.jpg"))
    shutil.copy(folder["good"][1], d / "c.jpg")
    out = tmp_path / "results.csv"
    for said in ("3 photos measured (0 with errors)", "0 photos measured (0 with errors), 3 already in"):
        res = run("batch", d, "--out", out, "--px-per-mm", PX)
        assert res.returncode == 0 and res.stdout.startswith(said), res.stdout + res.stderr
    with open(out, newline="", encoding="utf-8", errors="surrogateescape") as fh:  # (the name's own bytes)
        files = [os.fsencode(r["file"]) for r in csv.DictReader(fh)]
    assert sorted(os.path.basename(f) for f in files) == [b"a.jpg", b"b\xff.jpg", b"c.jpg"]


def test_a_named_pipe_in_the_folder_or_on_the_command_line_does_not_hang_the_run(folder, tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(folder["good"][0], d / "a.jpg")
    os.mkfifo(d / "pipe.jpg")
    res = run("batch", d, "--out", tmp_path / "r.csv", "--px-per-mm", PX, timeout=120)  # (skipped in a folder)
    assert res.returncode == 0 and res.stdout.startswith("1 photos measured (0 with errors)"), res.stdout
    res = run("batch", d / "pipe.jpg", "--out", tmp_path / "p.csv", "--px-per-mm", PX, timeout=120)
    (row,) = read_rows(tmp_path / "p.csv")[1]
    assert "is not a regular file" in row["error"]


def test_killed_run_resumes_after_its_last_whole_row(folder, first_run, tmp_path):
    out = tmp_path / "results.csv"
    lines = first_run["out"].read_text(encoding="utf-8").splitlines(keepends=True)
    # As a kill (power loss) mid-write leaves it: header, two whole rows, and a row torn inside its last field —
    # it still has every column, so only the missing newline tells that it is not whole.
    out.write_text("".join(lines[:3]) + lines[3][:-10], encoding="utf-8")
    res = run("batch", folder["dir"], "--out", out, "--px-per-mm", PX)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("3 photos measured")
    header, rows = read_rows(out)
    assert header == list(MEASURE_COLUMNS)
    want = by_file(first_run["rows"])
    got = by_file(rows)
    assert set(got) == set(want)
    assert all(numbers(got[k]) == numbers(want[k]) for k in want)


# ------------------------------------------------------------------------------------ where the work runs
def test_two_processes_give_the_same_rows_as_one(folder, first_run, tmp_path):
    out = tmp_path / "jobs2.csv"
    res = run("batch", folder["dir"], "--out", out, "--px-per-mm", PX, "--jobs", 2)
    assert res.returncode == 0, res.stderr
    got, want = by_file(read_rows(out)[1]), by_file(first_run["rows"])
    assert set(got) == set(want)
    for k in want:
        assert numbers(got[k]) == numbers(want[k]), k


def test_a_dask_cluster_gives_the_same_rows_as_one_process(folder, first_run, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import this checkout's analyzer
    # Worker processes are spawned, and spawn re-runs the parent's __main__ by path: after an AppTest in this
    # process that is app.py. A bare __main__ keeps the workers to their own job.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", memory_limit="1GiB") as cluster:
        out = tmp_path / "dask.csv"
        res = run("batch", folder["dir"], "--out", out, "--px-per-mm", PX, "--scheduler", cluster.scheduler_address)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
    got, want = by_file(read_rows(out)[1]), by_file(first_run["rows"])
    assert set(got) == set(want)
    for k in want:
        assert numbers(got[k]) == numbers(want[k]), k


#: What is done to the cluster's workers before the batch, and what the batch must say instead of failing every row.
_BROKEN_CLUSTERS = {
    # A worker whose Python cannot import Relief (started without PYTHONPATH): every task would fail to unpickle.
    "worker-without-relief": (1, "import sys\nfor k in [k for k in sys.modules if k.split('.')[0] == 'analyzer']:\n"
                                 "    sys.modules[k] = None\nsys.modules['analyzer'] = None",
                              "cannot import Relief"),
    "worker-of-another-version": (1, "import analyzer.registry as r\nr.ALGORITHM_VERSION = '0.0.1'",
                                  "runs Relief algorithm 0.0.1"),
    "no-workers": (0, None, "no Dask workers"),
}


@pytest.mark.parametrize("case", list(_BROKEN_CLUSTERS))
def test_a_cluster_that_cannot_run_relief_is_refused_before_anything_is_written(case, folder, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    n_workers, poison, said = _BROKEN_CLUSTERS[case]
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # (see the test above)
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", memory_limit="1GiB") as cluster, \
            distributed.Client(cluster) as client:
        if poison is not None:
            client.run(exec, poison)
        out = tmp_path / "r.csv"
        res = run("batch", folder["dir"], "--out", out, "--px-per-mm", PX, "--scheduler", cluster.scheduler_address)
    assert res.returncode == 2, res.stdout + res.stderr
    assert said in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()  # no header-only CSV, no rows of failures


def test_progress_bar_on_a_terminal(folder, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        res = subprocess.run([sys.executable, "-m", "analyzer", "batch", str(folder["good"][0]), "--out",
                              str(tmp_path / "r.csv")], cwd=ROOT, stdout=subprocess.PIPE, stderr=follower,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        os.close(follower)
        follower = None
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert res.returncode == 0
    assert b"100%" in seen and b"1/1" in seen


# --------------------------------------------------------------------------------------------------- compare
def test_compare_pairs_by_name_with_change_interval_mdc_and_verdict(tmp_path):
    base, follow = tmp_path / "week00", tmp_path / "week12"
    write(base / "p01.jpg", photo(1, capture=PAIR_CAPTURE))
    write(follow / "p01.jpg", photo(1, depth=0.4, noise_seed=1, capture=PAIR_CAPTURE))  # 40 % depth: smoother
    same = write(base / "clinic2" / "p02.png", photo(2))
    (follow / "clinic2").mkdir()
    shutil.copy(same, follow / "clinic2" / "p02.png")  # the very same file: no change at all
    write(base / "p03.jpg", photo(3))  # no follow-up
    out = tmp_path / "changes.csv"
    res = run("batch", "--compare", base, follow, "--out", out, "--px-per-mm", PX)
    assert res.returncode == 0, res.stderr
    header, rows = read_rows(out)
    assert header == list(COMPARE_COLUMNS)
    rows = by_file(rows, key="name")
    assert set(rows) == {"p01", "clinic2/p02", "p03"}

    smoother = rows["p01"]
    lo, hi, change = (float(smoother[k]) for k in ("ci95_low_pct", "ci95_high_pct", "change_pct"))
    assert lo < change < hi < 0
    assert float(smoother["mdc_pct"]) > 0 and -change > float(smoother["mdc_pct"])
    assert (smoother["significant"], smoother["verdict"]) == ("True", "smoother")
    assert smoother["baseline"] == str((base / "p01.jpg").resolve())

    unchanged = rows["clinic2/p02"]
    assert float(unchanged["change_pct"]) == 0.0
    assert float(unchanged["ci95_low_pct"]) < 0 < float(unchanged["ci95_high_pct"])
    assert (unchanged["significant"], unchanged["verdict"]) == ("False", "no measurable change")
    assert unchanged["baseline_sha256"] == unchanged["followup_sha256"]

    assert rows["p03"]["change_pct"] == "" and "no follow-up photo named 'p03'" in rows["p03"]["error"]


# ------------------------------------------------------------------------------------------------ bad usage
@pytest.fixture
def usage(folder, tmp_path) -> dict:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    return {"photos": folder["dir"], "dir": tmp_path, "other": other, "missing": tmp_path / "nowhere" / "r.csv"}


@pytest.mark.parametrize("args, says", [
    (["--out", "{dir}/r.csv"], "either folders/photos"),
    (["{photos}", "--compare", "{photos}", "{photos}", "--out", "{dir}/r.csv"], "either folders/photos"),
    (["{dir}/no-such-folder", "--out", "{dir}/r.csv"], "does not exist"),
    (["{photos}", "--out", "{dir}/r.csv", "--jobs", "0"], "at least 1"),
    (["{photos}", "--out", "{dir}/r.csv", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
    (["{photos}", "--out", "{dir}/r.csv", "--scheduler", "not an address"], "tcp://HOST:PORT"),
    (["{photos}", "--out", "{dir}"], "is a folder"),
    (["{photos}", "--out", "{missing}"], "does not exist"),
    (["{photos}", "--out", "{other}"], "columns differ"),
    (["{photos}", "--out", "{dir}/r.csv", "--px-per-mm", "-3"], "positive number"),
    (["--compare", "{photos}/p01.jpg", "{photos}", "--out", "{dir}/r.csv"], "not a folder"),
    (["{photos}"], "--out"),
], ids=["nothing", "both", "missing-path", "jobs0", "jobs+scheduler", "bad-address", "out-dir", "out-parent",
        "foreign-csv", "bad-scale", "compare-file", "no-out"])
def test_bad_usage_is_one_line_and_exit_2(usage, args, says):
    res = run("batch", *(a.format(**usage) for a in args))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], res.stderr
    assert res.stdout == ""
    assert not (usage["dir"] / "r.csv").exists()


def test_resuming_with_another_scale_is_refused(first_run, folder):
    res = run("batch", folder["dir"], "--out", first_run["out"])
    assert res.returncode == 2 and "--px-per-mm 30" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_second_run_on_the_same_csv_at_the_same_time_is_refused(first_run, folder):
    import fcntl

    with open(first_run["out"], "a") as held:  # as a running batch holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = run("batch", folder["dir"], "--out", first_run["out"], "--px-per-mm", PX)
    assert res.returncode == 2 and "another batch run is writing" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert read_rows(first_run["out"])[1] == first_run["rows"]


def test_a_failed_rewrite_of_the_csv_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    """The CSV is rewritten through a temporary file and an atomic rename: if the rename fails (disk full, a
    folder turned read-only), the previous CSV stays whole and no hidden .tmp file is left beside it."""
    from analyzer import batch

    out = tmp_path / "results.csv"
    out.write_text("file,value\nold.jpg,1\n")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch.os, "replace", refuse)
    with pytest.raises(OSError):
        batch._rewrite(out, [{"file": "new.jpg", "value": 2}], ["file", "value"], "file")
    assert out.read_text() == "file,value\nold.jpg,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
