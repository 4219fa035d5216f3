"""The PDF progress report: same numbers as the Progress page, a chart and photos on page 1, hostile text, CLI."""
from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import MAIN, another_photo, new_patient, seeded_demo_dir

pytest.importorskip("fpdf")
pypdf = pytest.importorskip("pypdf")
pdfium = pytest.importorskip("pypdfium2")

import analyzer  # noqa: E402
from relief_app import charts, demo, report, reportdata  # noqa: E402
from relief_app.text import change_text, change_with_interval, significance_text, visit_sentence  # noqa: E402
from storage import NewMeasurement, NewPhoto, open_store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
NOW = dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A data folder with the demo patient, seeded as the app's first start does (photos measured for real)."""
    return seeded_demo_dir(tmp_path_factory, "report")


@pytest.fixture
def data_dir(seeded, tmp_path) -> Path:
    """A private copy of the seeded folder (for tests that write)."""
    return Path(shutil.copytree(seeded, tmp_path / "data"))


@pytest.fixture(scope="module")
def demo_report(seeded):
    with open_store(seeded) as store:
        patient = reportdata.find_patient(store, MAIN, demo.DEMO_CODE)
        data = reportdata.gather_report(store, MAIN, patient.id, clinic="Clinique du Parc", now=NOW)
        points = store.progress(MAIN, patient.id, demo.DEMO_REGION, algorithm_version=analyzer.ALGORITHM_VERSION)
        comps = {p.photo_id: store.get_comparison(MAIN, patient.id, points[0].photo_id, p.photo_id,
                                                  analyzer.ALGORITHM_VERSION) for p in points[1:]}
    return data, points, comps


def _text(pdf: bytes) -> str:
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in pages))


def _page_png(pdf: bytes, index: int = 0, scale: float = 1.5) -> np.ndarray:
    doc = pdfium.PdfDocument(pdf)
    try:
        return np.asarray(doc[index].render(scale=scale).to_pil().convert("RGB"))
    finally:
        doc.close()


# -------------------------------------------------------------------------------------------- numbers
def test_pdf_text_holds_the_progress_pages_latest_change_and_interval(demo_report):
    data, points, comps = demo_report
    pdf = report.render_pdf(data)
    text = _text(pdf)
    # The Progress page: series from store.progress, latest change formatted with change_with_interval.
    last = charts.progress_series(points, "roughness_index")[-1]
    assert last.low is not None and last.significant is not None
    latest = change_with_interval(last.change, last.low, last.high)
    assert f"Latest change ({last.date:%d %b %Y}): {latest} — {significance_text(last.significant)}" in text
    assert f"{change_text(last.low)} to {change_text(last.high)}" in text  # the table's interval column
    assert f"smallest detectable change {comps[points[-1].photo_id].mdc_pct:.0f} %" in text
    # Every follow-up's change vs the first visit, and every visit date, is in the visit table.
    for p in points[1:]:
        assert change_text(p.change_pct) in text
    for p in points:
        assert f"{p.date:%d %b %Y}" in text
    # The sentence of visit mode, the header and the footer.
    assert visit_sentence(last.change, last.low, last.high, last.significant, weeks=last.weeks) in text
    assert "Demo patient" in text and "Clinique du Parc" in text
    assert f"algorithm version {analyzer.ALGORITHM_VERSION}" in text
    assert "generated 2026-05-04 09:30 UTC" in text
    assert "Method and limits" in text and "page 1 of" in text


def test_visit_table_has_every_column_with_the_secondary_metrics(demo_report):
    data, points, _ = demo_report
    text = _text(report.render_pdf(data))
    for head in ("Date", "Week", "Roughness index (%)", "95 % interval", "MDC", "Verdict"):
        assert head in text
    for m in reportdata.SECONDARY_METRICS:
        # One number of decimals per column: three significant figures of the column's largest value.
        digits = report._decimals([p.metrics[m] for p in points])
        for p in points:
            assert f"{p.metrics[m]:.{digits}f}" in text, m
    # Headings break between words only (narrow columns split "Erythema" into "Erythem a" before).
    for m in reportdata.SECONDARY_METRICS:
        assert report.metric_heading(m) in text, m
    # Whole weeks without ".0"
    assert " 0.0 " not in text and " 12.0 " not in text


def test_table_numbers_and_widths():
    assert [report._weeks(w) for w in (0.0, 1.0, 2.43, 12.0, -1.0)] == ["0", "1", "2.4", "12", "\u22121"]
    assert report._decimals([4.91, 5.3, 3.97]) == 2
    assert report._decimals([81.5, 106.0]) == 0
    assert report._decimals([0.0421, 0.0226]) == 4
    assert report._decimals([float("nan"), None]) == 0


def test_same_data_gives_the_same_pdf_bytes(demo_report):
    data, _, _ = demo_report
    assert report.render_pdf(data) == report.render_pdf(data)


@pytest.mark.parametrize("paper, size_pt", [("A4", (595.28, 841.89)), ("Letter", (612.0, 792.0))])
def test_paper_sizes(demo_report, paper, size_pt):
    data, _, _ = demo_report
    reader = pypdf.PdfReader(io.BytesIO(report.render_pdf(data, paper=paper)))
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx(size_pt, abs=0.5)
    assert len(reader.pages) >= 2  # the method and limits section follows the visit table


# -------------------------------------------------------------------------------------------- pictures
def _near(img: np.ndarray, rgb, tol: int = 18) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.asarray(rgb)) <= tol, axis=-1)


def test_page_one_is_not_blank_and_shows_chart_and_photos(demo_report):
    data, _, _ = demo_report
    img = _page_png(report.render_pdf(data))
    ink = np.any(img < 200, axis=-1).mean()
    assert ink > 0.05, f"page 1 is almost blank ({ink:.1%} ink)"
    # the chart: the shaded collagen window (#1a9850 at 12 % on white) and a significant "smoother" marker (#2166ac)
    assert _near(img, (226, 241, 233), tol=6).sum() > 2000
    assert _near(img, (33, 102, 172), tol=30).sum() > 50
    # the before/after photos: skin-coloured pixels (the demo's synthetic skin is pink-brown)
    r, g, b = (img[..., i].astype(int) for i in range(3))
    skin = (r > 150) & (r - b > 40) & (r - g > 25)
    assert skin.sum() > 20000


def test_without_a_second_visit_there_is_no_chart_and_no_crash(data_dir):
    with open_store(data_dir) as store:
        p = new_patient(store, "Single Visit", code="ONE")
        store.save_visit(MAIN, p.id, date=dt.date(2026, 1, 5), photos=[NewPhoto(
            (SAMPLES / "week00_baseline.jpg").read_bytes(), "a.jpg", "forehead",
            measurement=NewMeasurement(analyzer.ALGORITHM_VERSION, roughness_index=4.0,
                                       metrics={"roughness_index": 4.0}))])
        data = reportdata.gather_report(store, MAIN, p.id, now=NOW)
    text = _text(report.render_pdf(data))
    assert visit_sentence(None, None, None, None, first_visit=True) in text
    assert "Latest change" not in text


# ------------------------------------------------------------------------------------------ hostile text
HOSTILE = ("# **Zoë** <script>alert(1)</script> [x](javascript:alert(1)) Ω Жанна 李小龙 😀 \u202eevil\x07 "
           + "A" * 10_000)


def test_hostile_names_notes_and_regions_do_not_crash_the_pdf(data_dir):
    with open_store(data_dir) as store:
        # (a name and an area hold 200 characters: longer ones are refused; notes have no limit)
        p = new_patient(store, HOSTILE[:200], code="<b>H1</b>", notes=HOSTILE)
        photo = (SAMPLES / "week00_baseline.jpg").read_bytes()
        for i, day in enumerate((dt.date(2026, 1, 5), dt.date(2026, 2, 16))):
            store.save_visit(MAIN, p.id, date=day, notes=HOSTILE, photos=[NewPhoto(
                another_photo(photo, i), "a.jpg", "<i>cheek</i> " + "R" * 87,  # (the longest region there is)
                measurement=NewMeasurement(analyzer.ALGORITHM_VERSION, roughness_index=4.0 - i,
                                           metrics={"roughness_index": 4.0 - i}))],
                treatment={"needle_depth_mm": 1.0, "area": HOSTILE[:200], "notes": HOSTILE} if i == 0 else None)
        data = reportdata.gather_report(store, MAIN, p.id, now=NOW)
    pdf = report.render_pdf(data, paper="Letter")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert 2 <= len(reader.pages) <= 6  # long fields were cut, not printed in full
    text = _text(pdf)
    assert "# **Zoë** <script>alert(1)</script>" in text  # printed literally
    assert "Ω Жанна" in text
    assert "A" * 10_000 not in text and "…" in text
    if report.cjk_font() is None:
        pytest.skip("no CJK font installed (make setup installs fonts-droid-fallback)")
    assert "李小龙" in text  # a Chinese name keeps its characters (they were left out)


def test_a_page_count_placeholder_typed_in_a_name_is_printed_as_typed(data_dir):
    """fpdf2 replaces its page-count alias anywhere in the document: a patient called "Anna {nb}" was printed as
    "Anna 2" (a review). The alias is made of private-use characters, which clean() takes out of any text."""
    with open_store(data_dir) as store:
        p = new_patient(store, "Anna {nb} " + report.PAGES_ALIAS + "x", notes="{nb}")
        data = reportdata.gather_report(store, MAIN, p.id, now=NOW)
    pdf = report.render_pdf(data)
    text = _text(pdf)
    assert "Anna {nb} x" in text and "page 1 of 1" in text
    assert pdf == report.render_pdf(data)  # still the same bytes for the same data


def test_clean_removes_control_characters_and_cuts():
    s = report.clean("a\x00b\u202ec\nd" + "x" * 50, 10)
    assert s == "abc dxxxx…"
    assert report.clean("\ud800 lone", 20) == "? lone"


# ------------------------------------------------------------------------------------------------- CLI
def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RELIEF_DATA_DIR": str(data_dir), "RELIEF_CLINIC_NAME": "Test Clinic"}
    env.pop("RELIEF_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "relief_app", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


def test_cli_report_writes_the_same_numbers(seeded, demo_report, tmp_path):
    _, points, _ = demo_report
    out = tmp_path / "r.pdf"
    r = _cli(seeded, "report", "--patient", "DEMO", "--out", str(out), "--region", demo.DEMO_REGION,
             "--paper", "Letter")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF")
    last = charts.progress_series(points, "roughness_index")[-1]
    text = _text(pdf)
    assert change_with_interval(last.change, last.low, last.high) in text
    assert "Test Clinic" in text
    assert float(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].mediabox.width) == pytest.approx(612, abs=0.5)


@pytest.mark.parametrize("args, words", [
    (["--patient", "NOBODY", "--out", "{tmp}/r.pdf"], "no patient with code 'NOBODY'"),
    (["--patient", "DEMO", "--out", "{tmp}/missing/dir/r.pdf"], "folder does not exist"),
    (["--patient", "DEMO", "--out", "{tmp}"], "is a folder"),
    (["--patient", "DEMO", "--out", "{tmp}/r.pdf", "--region", "nose"], "no photos of region 'nose'"),
    (["--patient", "DEMO", "--out", "{tmp}/r.pdf", "--paper", "A3"], "invalid choice"),
    (["--out", "{tmp}/r.pdf"], "required: --patient"),
])
def test_cli_report_errors_are_one_line_and_exit_2(seeded, tmp_path, args, words):
    r = _cli(seeded, "report", *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.pdf").exists()


def test_cli_report_unwritable_file_exits_2(seeded, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root may write anywhere on disk, but not create files in /proc
        target = locked / "r.pdf" if not os.access(locked, os.W_OK) else Path("/proc/relief-report.pdf")
        if not target.parent.is_dir():
            pytest.skip("no unwritable folder on this system")
        r = _cli(seeded, "report", "--patient", "DEMO", "--out", str(target))
    finally:
        locked.chmod(0o700)
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr and "cannot write" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_results_missing_for_the_current_algorithm_version_are_computed_as_on_the_progress_page(data_dir):
    with open_store(data_dir) as store:
        p = new_patient(store, "Old Version", code="OLD")
        for name, day in (("week00_baseline.jpg", dt.date(2026, 1, 5)), ("week12.jpg", dt.date(2026, 3, 30))):
            store.save_visit(MAIN, p.id, date=day, photos=[NewPhoto(
                (SAMPLES / name).read_bytes(), name, "left cheek",
                measurement=NewMeasurement("0.0.1-old", roughness_index=9.0, metrics={"roughness_index": 9.0}))])
        before = store.progress(MAIN, p.id, "left cheek")
        assert before[1].roughness_index is None and before[1].change_pct is None
        data = reportdata.gather_report(store, MAIN, p.id, now=NOW)
        after = store.progress(MAIN, p.id, "left cheek")
    rows = data.regions[0].rows
    assert rows[1].roughness_index == pytest.approx(after[1].roughness_index) != 9.0
    assert rows[1].change_pct == pytest.approx(after[1].change_pct)
    assert rows[1].ci_low is not None and rows[1].mdc_pct is not None
    assert change_with_interval(rows[1].change_pct, rows[1].ci_low, rows[1].ci_high) in _text(
        report.render_pdf(data))


def test_report_says_which_changes_an_update_of_the_analysis_reads_differently(data_dir):
    """A patient may hold an earlier report: when the installed version reads a visit's change differently from the
    version before it, the PDF says so with both readings, as the Progress page does; the same readings say nothing."""
    version = analyzer.ALGORITHM_VERSION
    with open_store(data_dir) as store:
        patient = reportdata.find_patient(store, MAIN, demo.DEMO_CODE)
        points = store.progress(MAIN, patient.id, demo.DEMO_REGION, algorithm_version=version)
        base, follow = points[0], [p for p in points[1:] if p.change_pct is not None]

        def store_as(v, shift=0.0):
            for p in follow:
                store.save_comparison(MAIN, patient.id, base.photo_id, p.photo_id, v, change_pct=p.change_pct + shift,
                                      ci_low=p.ci_low, ci_high=p.ci_high, mdc_pct=9.0, significant=p.significant)
            return _text(report.render_pdf(reportdata.gather_report(store, MAIN, patient.id, now=NOW)))

        assert "Computed again" not in store_as("1.0.9")  # the same readings under an earlier version
        text = store_as("1.1.0", shift=1.5)
    assert f"Computed again by analysis version {version}" in text and "With version 1.1.0" in text
    last = follow[-1]
    assert f"{last.date:%d %b %Y}: {change_text(last.change_pct, 1)}" in text
    assert f"(was {change_text(last.change_pct + 1.5, 1)}" in text


def test_cli_update_results_computes_what_an_upgrade_left_missing(data_dir, monkeypatch, capsys):
    # After an upgrade (a new ALGORITHM_VERSION) no stored result is for the installed version, as if the
    # measurements and comparisons table held none: the command computes them for every patient and region at
    # once, as opening each Progress page would; a second run finds nothing left to do. The numbers are the ones
    # the pages computed.
    import sqlalchemy as sa

    from relief_app import __main__ as cli

    version = analyzer.ALGORITHM_VERSION
    monkeypatch.setenv("RELIEF_DATA_DIR", str(data_dir))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    with open_store(data_dir) as store:
        pid = reportdata.find_patient(store, MAIN, demo.DEMO_CODE).id
        stored = store.progress(MAIN, pid, demo.DEMO_REGION, algorithm_version=version)
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM comparisons"))
            conn.execute(sa.text("DELETE FROM measurements"))
        missing = store.progress(MAIN, pid, demo.DEMO_REGION, algorithm_version=version)
    assert all(p.roughness_index is not None for p in stored)
    assert all(p.roughness_index is None for p in missing) and all(p.change_pct is None for p in missing[1:])
    assert cli.main(["update-results"]) == 0
    out = capsys.readouterr()
    assert "results computed for 1 region(s), 0 already up to date, 1 patient(s)" in out.out, out
    assert out.err == ""
    with open_store(data_dir) as store:
        after = store.progress(MAIN, pid, demo.DEMO_REGION, algorithm_version=version)
    assert [p.roughness_index for p in after] == pytest.approx([p.roughness_index for p in stored], abs=1e-6)
    assert [p.change_pct for p in after[1:]] == pytest.approx([p.change_pct for p in stored[1:]], abs=1e-6)
    assert cli.main(["update-results", "--patient", demo.DEMO_CODE]) == 0
    assert "results computed for 0 region(s), 1 already up to date" in capsys.readouterr().out
    assert cli.main(["update-results", "--patient", "NOBODY"]) == 2
    err = capsys.readouterr().err
    assert "no patient with code 'NOBODY'" in err and len(err.strip().splitlines()) == 1


def test_cli_update_results_stays_in_its_clinic_and_refuses_hostile_codes(data_dir, monkeypatch, capsys):
    # The command has no sign-in (whoever runs it has the server's files) and acts within one clinic, like report
    # and export: run for another clinic it neither finds nor computes anything of MAIN's patients; an unknown
    # clinic and a hostile patient code are one line and exit 2, with nothing computed.
    import sqlalchemy as sa

    from relief_app import __main__ as cli
    from storage import Actor

    monkeypatch.setenv("RELIEF_DATA_DIR", str(data_dir))
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)
    with open_store(data_dir) as store:
        store.accounts.add(Actor.system(), "o_admin", role="admin", password="o" * 12, clinic="OTHERCL")
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM comparisons"))
            conn.execute(sa.text("DELETE FROM measurements"))
    assert cli.main(["update-results", "--clinic", "OTHERCL"]) == 0
    assert "results computed for 0 region(s), 0 already up to date, 0 patient(s)" in capsys.readouterr().out
    for args, words in ((["--clinic", "NOWHERE"], "no clinic NOWHERE"),
                        (["--clinic", "OTHERCL", "--patient", "DEMO"], "no patient with code 'DEMO'"),
                        (["--patient", "=HYPERLINK(\"http://x\")\n<script>alert(1)</script>"], "no patient with code")):
        assert cli.main(["update-results", *args]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    with open_store(data_dir) as store:
        pid = reportdata.find_patient(store, MAIN, demo.DEMO_CODE).id
        points = store.progress(MAIN, pid, demo.DEMO_REGION, algorithm_version=analyzer.ALGORITHM_VERSION)
    assert all(p.roughness_index is None for p in points)  # nothing of MAIN's was computed


def test_cli_report_does_not_write_through_a_link_planted_at_its_temporary_name(seeded, tmp_path):
    # (security review: in a shared folder someone could plant a symbolic link at ".r.pdf.tmp" pointing at a file
    # they can read, and the report — names, birth dates, notes — would have been written there)
    bait = tmp_path / "bait"
    bait.write_bytes(b"")
    (tmp_path / ".r.pdf.tmp").symlink_to(bait)
    r = _cli(seeded, "report", "--patient", "DEMO", "--out", str(tmp_path / "r.pdf"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert bait.read_bytes() == b"" and not (tmp_path / "r.pdf").exists()
