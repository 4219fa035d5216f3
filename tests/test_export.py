"""The data export: tidy CSVs and a workbook with the stored numbers; a de-identified export holds no name, code
or date of the database."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import MAIN, another_photo, new_patient, seeded_demo_dir
from storage import Actor

openpyxl = pytest.importorskip("openpyxl")

import analyzer  # noqa: E402
from analyzer.registry import METRICS  # noqa: E402
from relief_app import demo, export, reportdata  # noqa: E402
from storage import NewMeasurement, NewPhoto, open_store  # noqa: E402

try:
    import pandas as pd
except ImportError:  # pragma: no cover - pandas is optional; the csv module reads the files then
    pd = None

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
KEY = b"test-key-0123456789abcdef0123456789abcdef"
#: Free text typed at the clinic into a region, a box's name, a treated area and a procedure.
TYPED = dict(region="Whitfield burn scar 2019", part="Zoë jaw box", area="Zoë's left cheek after the 2019 accident",
             procedure="Okonkwo peel")
SECOND = dict(name="Zoë Ångström-Whitfield", code="ZX-4471", birth_date=dt.date(1987, 3, 14),
              notes="Prefers morning appointments; referred by Dr Okonkwo")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """The demo patient (seeded as on the app's first start) and a second patient with a birth date and notes."""
    data = seeded_demo_dir(tmp_path_factory, "export")
    with open_store(data) as store:
        p = new_patient(store, SECOND["name"], code=SECOND["code"], birth_date=SECOND["birth_date"],
                                 notes=SECOND["notes"])
        photo = (SAMPLES / "week00_baseline.jpg").read_bytes()
        for i, day in enumerate((dt.date(2025, 2, 3), dt.date(2025, 3, 17))):
            store.save_visit(MAIN, p.id, date=day, notes="=HYPERLINK(\"http://x\") Whitfield visit", photos=[NewPhoto(
                another_photo(photo, i), "a.jpg", "forehead", measurement=NewMeasurement(
                    analyzer.ALGORITHM_VERSION, roughness_index=5.0 - i,
                    metrics={"roughness_index": 5.0 - i, "scar_density": 2.0,
                             "region:forehead:roughness_index": 5.0 - i, "region:forehead:area_cm2": 12.0,
                             # a box the practitioner named (free text, as regions and areas are)
                             f"region:{TYPED['part']}:roughness_index": 4.0 - i}))] + [NewPhoto(
                another_photo(photo, 10 + i), "b.jpg", TYPED["region"], measurement=NewMeasurement(
                    analyzer.ALGORITHM_VERSION, roughness_index=6.0 - i, metrics={"roughness_index": 6.0 - i}))],
                treatment={"needle_depth_mm": 2.0, "area": TYPED["area"], "procedure": TYPED["procedure"],
                           "notes": "=HYPERLINK(\"http://evil\") Okonkwo\x07"} if i == 0 else None)
    return data


@pytest.fixture(scope="module")
def exported(seeded, tmp_path_factory):
    with open_store(seeded) as store:
        data = reportdata.gather_export(store, MAIN)
        demo_id = reportdata.find_patient(store, MAIN, demo.DEMO_CODE).id
        points = store.progress(MAIN, demo_id, demo.DEMO_REGION)
    plain = tmp_path_factory.mktemp("plain")
    deid = tmp_path_factory.mktemp("deid")
    export.write_export(data, plain)
    export.write_export(data, deid, deidentify=True, key=KEY)
    return data, points, plain, deid


def _rows(path: Path) -> list[dict]:
    if pd is not None:
        return pd.read_csv(path, keep_default_na=False).to_dict("records")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _all_text(folder: Path) -> str:
    """Every file of an export as text, the workbook unzipped (its XML parts) as well."""
    parts = []
    for f in sorted(folder.iterdir()):
        if f.suffix == ".xlsx":
            with zipfile.ZipFile(f) as z:
                parts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        else:
            parts.append(f.read_text(encoding="utf-8"))
    return "\n".join(parts)


def _secrets_of_database(data_dir: Path) -> list[str]:
    """Every name, code, note and date (in several spellings) the database holds."""
    out = []
    with open_store(data_dir) as store:
        for s in store.list_patients(MAIN):
            p = store.patient(MAIN, s.id)
            out += [p.name, p.code, p.notes]
            dates = [p.birth_date, p.created_at.date()]
            for v in store.visits(MAIN, p.id):
                dates.append(v.date)
                out.append(v.notes)
                dates += [ph.created_at.date() for ph in v.photos]
                out += [ph.region for ph in v.photos if ph.region not in export.STANDARD_REGIONS]
            for t in store.treatments(MAIN, p.id):
                dates.append(t.date)
                out.append(t.notes)
                out += [t.area if t.area not in export.STANDARD_REGIONS else "",
                        t.procedure if t.procedure not in export.STANDARD_PROCEDURES else ""]
            for d in filter(None, dates):
                out += [d.isoformat(), f"{d:%d %b %Y}", f"{d:%d/%m/%Y}", f"{d:%m/%d/%Y}", f"{d:%d.%m.%Y}"]
    return sorted({s for s in out if s})


# --------------------------------------------------------------------------------------------- content
def test_measurements_have_one_row_per_photo_and_registry_metric(exported):
    data, _, plain, _ = exported
    rows = _rows(plain / "measurements.csv")
    demo_rows = [r for r in rows if r["patient"] == demo.DEMO_CODE and r["part"] == ""]
    # 4 demo photos, each with every registry metric it was measured with
    n_metrics = sum(1 for k in data.patients[0].measurements[0][3] if k in METRICS)
    assert n_metrics >= 20
    assert len(demo_rows) == 4 * n_metrics
    for r in rows:
        assert r["unit"] == METRICS[r["metric"]].unit
        assert r["algorithm_version"] == analyzer.ALGORITHM_VERSION
    week12 = [r for r in demo_rows if float(r["weeks_since_first_treatment"]) == 12.0
              and r["metric"] == "roughness_index"]
    assert len(week12) == 1
    # the per-region numbers of a photo measured by regions (area_cm2 is not a registry metric: left out)
    parts = [r for r in rows if r["part"] == "forehead"]
    assert {r["metric"] for r in parts} == {"roughness_index"}


def test_comparisons_hold_the_stored_change_interval_mdc_and_verdict(exported, seeded):
    _, points, plain, _ = exported
    rows = [r for r in _rows(plain / "comparisons.csv") if r["patient"] == demo.DEMO_CODE]
    assert len(rows) == len(points) - 1
    with open_store(seeded) as store:
        pid = reportdata.find_patient(store, MAIN, demo.DEMO_CODE).id
        for r, p in zip(rows, points[1:]):
            assert r["followup_date"] == p.date.isoformat()
            assert float(r["change_pct"]) == pytest.approx(p.change_pct, rel=1e-12)
            assert float(r["ci95_low_pct"]) == pytest.approx(p.ci_low, rel=1e-12)
            assert float(r["ci95_high_pct"]) == pytest.approx(p.ci_high, rel=1e-12)
            c = store.get_comparison(MAIN, pid, points[0].photo_id, p.photo_id, analyzer.ALGORITHM_VERSION)
            assert float(r["mdc_pct"]) == pytest.approx(c.mdc_pct, rel=1e-12)
            assert r["verdict"] == ("within measurement noise" if not p.significant else
                                    "significantly smoother" if p.change_pct < 0 else "significantly rougher")
            # the demo course is photographed alike; the stored consistency check says so, with no reason given
            assert r["photos_taken_alike"] == "True" and r["not_alike_because"] == "" and not p.caveats


def test_treatments_and_patients(exported):
    _, _, plain, _ = exported
    tx = _rows(plain / "treatments.csv")
    assert [r["date"] for r in tx if r["patient"] == demo.DEMO_CODE] == sorted(
        r["date"] for r in tx if r["patient"] == demo.DEMO_CODE)
    assert len(tx) == 3
    pats = {r["patient"]: r for r in _rows(plain / "patients.csv")}
    assert pats[SECOND["code"]]["name"] == SECOND["name"]
    assert pats[SECOND["code"]]["birth_date"] == "1987-03-14"
    assert int(pats[demo.DEMO_CODE]["n_visits"]) == 4


def test_workbook_has_the_same_sheets_and_rows_as_the_csvs(exported):
    _, _, plain, _ = exported
    wb = openpyxl.load_workbook(plain / export.WORKBOOK, read_only=True)
    assert wb.sheetnames == ["measurements", "comparisons", "treatments", "patients"]
    for name in wb.sheetnames:
        with open(plain / f"{name}.csv", newline="", encoding="utf-8") as f:
            csv_rows = list(csv.reader(f))
        sheet = [["" if v is None else v for v in row] for row in wb[name].iter_rows(values_only=True)]
        assert len(sheet) == len(csv_rows)
        assert [str(v) for v in sheet[0]] == csv_rows[0]
    # numbers are numbers in the workbook, not text
    values = [row[7] for row in wb["measurements"].iter_rows(min_row=2, values_only=True)]
    assert values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values), \
        {type(v) for v in values}


def test_text_that_a_spreadsheet_would_run_is_not_a_formula(exported):
    _, _, plain, _ = exported
    wb = openpyxl.load_workbook(plain / export.WORKBOOK)
    notes = [c for c in wb["treatments"]["G"][1:] if c.value and "HYPERLINK" in str(c.value)]
    assert notes and all(c.data_type == "s" and str(c.value).startswith("'=") for c in notes)
    assert "'=HYPERLINK" in (plain / "treatments.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_never_starts_with_what_a_spreadsheet_runs(lead):
    # OWASP's list: a spreadsheet skips a leading tab or carriage return and runs the formula after it.
    assert export._cell(lead + '=HYPERLINK("https://evil.example")').startswith("'")


# ------------------------------------------------------------------------------------------ de-identified
def test_deidentified_export_holds_no_name_code_note_or_date_of_the_database(exported, seeded):
    _, _, plain, deid = exported
    secrets = _secrets_of_database(seeded)
    assert {"Demo patient", "DEMO", SECOND["name"], SECOND["code"], "1987-03-14", TYPED["region"], TYPED["area"],
            TYPED["procedure"]} <= set(secrets)
    assert TYPED["part"] in _all_text(plain) and TYPED["part"] not in _all_text(deid)
    plain_text, deid_text = _all_text(plain).casefold(), _all_text(deid).casefold()
    assert [s for s in ("Demo patient", "DEMO", SECOND["code"], "1987-03-14") if s.casefold() not in plain_text] == []
    found = [s for s in secrets if s.casefold() in deid_text]
    assert found == []


def test_deidentified_export_keeps_the_numbers_with_days_and_pseudonyms(exported):
    _, points, plain, deid = exported
    rows = _rows(deid / "comparisons.csv")
    demo_patient = next(p.patient for p in exported[0].patients if p.patient.code == demo.DEMO_CODE)
    pseudo = export.pseudonym(demo_patient, KEY, clinic_id=exported[0].clinic_id)
    demo_rows = [r for r in rows if r["patient"] == pseudo]
    assert [int(r["followup_day"]) for r in demo_rows] == [p.days_since_baseline for p in points[1:]]
    assert [float(r["change_pct"]) for r in demo_rows] == pytest.approx([p.change_pct for p in points[1:]])
    assert {r["patient"] for r in rows} <= {r["patient"] for r in _rows(deid / "patients.csv")}
    assert set(_rows(deid / "patients.csv")[0]) == {"patient", "n_visits", "n_treatments"}
    assert "notes" not in _rows(deid / "treatments.csv")[0] and "area" not in _rows(deid / "treatments.csv")[0]
    # Typed region and box names are numbered per patient; the standard names stay.
    second = next(p.patient for p in exported[0].patients if p.patient.code == SECOND["code"])
    pseudo_2 = export.pseudonym(second, KEY, clinic_id=exported[0].clinic_id)
    mine = [r for r in _rows(deid / "measurements.csv") if r["patient"] == pseudo_2]
    regions, parts = {r["region"] for r in mine} - {"forehead"}, {r["part"] for r in mine} - {"", "forehead"}
    assert len(regions) == len(parts) == 1 and regions | parts == {"other region 1", "other region 2"}
    assert {r["procedure"] for r in _rows(deid / "treatments.csv")} == {"micro-needling", "other"}
    tx_days = sorted(int(r["day"]) for r in _rows(deid / "treatments.csv") if r["patient"] == pseudo)
    assert tx_days == [0, 42]


def test_pseudonyms_are_stable_per_key_and_differ_between_keys():
    class P:
        code, id = "ZX-4471", 7

    a, b = export.pseudonym(P, KEY, clinic_id=1), export.pseudonym(P, KEY, clinic_id=1)
    assert a == b and a.startswith("P-") and len(a) == 18
    assert export.pseudonym(P, b"another key of enough length......", clinic_id=1) != a
    assert "4471" not in a
    # codes are unique per clinic only: another clinic's patient with the same code is another pseudonym
    assert export.pseudonym(P, KEY, clinic_id=2) != a


def test_a_deidentified_export_leaves_out_the_cameras_names(exported, tmp_path):
    """The stored photos lose their EXIF, but a comparison's "another camera" note carried the make and model
    (file-supplied text: "Dana Doe's Pixel") into comparisons.csv even de-identified (a review)."""
    data = exported[0]
    sentence = ("the follow-up was taken with another camera (Dana Doe's Pixel) than the baseline (Apple iPhone 15): "
                "each phone sharpens its photos in its own way")
    k = next(i for i, p in enumerate(data.patients) if p.comparisons)
    region, base, row = data.patients[k].comparisons[0]
    patient = dataclasses.replace(data.patients[k], comparisons=(
        (region, base, dataclasses.replace(row, caveats=(sentence, "the light came from another side"))),))
    data = dataclasses.replace(data, patients=(*data.patients[:k], patient, *data.patients[k + 1:]))
    export.write_export(data, tmp_path / "plain")
    export.write_export(data, tmp_path / "deid", deidentify=True, key=KEY)
    assert "Dana Doe" in (tmp_path / "plain" / "comparisons.csv").read_text()  # (the clinic's own export keeps it)
    notes = [r["not_alike_because"] for r in _rows(tmp_path / "deid" / "comparisons.csv") if r["not_alike_because"]]
    assert notes == ["the follow-up was taken with another camera than the baseline (the cameras' names are left "
                     "out of a de-identified export); the light came from another side"]
    assert all("Dana" not in (tmp_path / "deid" / f).read_text() for f in export.FILES if f.endswith(".csv"))


def test_two_clinics_patients_with_the_same_code_get_different_pseudonyms(tmp_path):
    """One key serves the whole server, and codes are unique per clinic only: another clinic's admin who creates a
    patient with a chosen code and exports must not learn this clinic's pseudonym for that code (a review)."""
    pseudonyms = []
    with open_store(tmp_path / "data") as store:
        store.accounts.add(Actor.system(), "north_admin", role="admin", password="a long password 12",
                           clinic="NORTH")
        for actor in (MAIN, store.accounts.clinic_actor("NORTH")):
            p = new_patient(store, "Same Code", actor=actor, code="P-001")
            store.consents.record(actor, p.id, "marketing", granted=True, date=dt.date(2020, 1, 1))
            data = reportdata.gather_export(store, actor, teaching=True)
            out = tmp_path / f"deid{len(pseudonyms)}"
            export.write_export(data, out, deidentify=True, key=KEY)
            pseudonyms.append({r["patient"] for r in _rows(out / "patients.csv")})
    assert len(pseudonyms[0]) == len(pseudonyms[1]) == 1 and pseudonyms[0] != pseudonyms[1]


def test_pseudonym_key_from_env_or_a_private_file(tmp_path, monkeypatch):
    monkeypatch.delenv(export.KEY_ENV, raising=False)
    k1 = export.pseudonym_key(tmp_path)
    assert export.pseudonym_key(tmp_path) == k1 and len(k1) == 64
    assert stat.S_IMODE((tmp_path / export.KEY_FILE).stat().st_mode) == 0o600
    monkeypatch.setenv(export.KEY_ENV, "clinic secret")
    assert export.pseudonym_key(tmp_path) == b"clinic secret"


def test_deidentified_export_needs_a_key(exported, tmp_path):
    data = exported[0]
    with pytest.raises(analyzer.errors.OptionError):
        export.write_export(data, tmp_path, deidentify=True, key=None)


# ------------------------------------------------------------------------------------------------- CLI
def _cli(data_dir: Path, *args: str, **env_extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "RELIEF_DATA_DIR": str(data_dir), **env_extra}
    env.pop("RELIEF_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "relief_app", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


def test_cli_export_one_patient_and_deidentified(seeded, tmp_path):
    r = _cli(seeded, "export", "--out", str(tmp_path / "one"), "--patient", "ZX-4471")
    assert r.returncode == 0, r.stderr
    assert {r_["patient"] for r_ in _rows(tmp_path / "one" / "measurements.csv")} == {"ZX-4471"}
    data = tmp_path / "data"
    shutil.copytree(seeded, data)
    with open_store(data) as store:  # (a de-identified export holds only patients who consented to that use)
        pid = reportdata.find_patient(store, MAIN, "ZX-4471").id
        store.consents.record(MAIN, pid, "marketing", granted=True, date=dt.date(2025, 2, 3))
    r = _cli(data, "export", "--out", str(tmp_path / "anon"), "--deidentify", RELIEF_PSEUDONYM_KEY="k" * 40)
    assert r.returncode == 0, r.stderr
    text = _all_text(tmp_path / "anon").casefold()
    assert "zx-4471" not in text and "demo" not in text
    assert sorted(p.name for p in (tmp_path / "anon").iterdir()) == sorted(export.FILES)


@pytest.mark.parametrize("args, words", [
    (["--out", "{tmp}/x", "--patient", "NOBODY"], "no patient with code 'NOBODY'"),
    (["--out", "{tmp}/afile"], "is a file"),
    (["--patient", "DEMO"], "required: --out"),
])
def test_cli_export_errors_are_one_line_and_exit_2(seeded, tmp_path, args, words):
    (tmp_path / "afile").write_text("not a folder")
    r = _cli(seeded, "export", *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_deidentified_rows_are_in_pseudonym_order_not_by_name(exported, tmp_path):
    """The patient list is sorted by name; de-identified rows in that order let a reader who knows the participants
    match pseudonyms to names by position (a review). They are in pseudonym order, whatever order they came in."""
    data = exported[0]
    assert len(data.patients) >= 2
    key = b"k" * 40
    out = {}
    for name, patients in (("as listed", data.patients), ("reversed", tuple(reversed(data.patients)))):
        export.write_export(dataclasses.replace(data, patients=patients), tmp_path / name, deidentify=True, key=key)
        out[name] = {f: (tmp_path / name / f"{f}.csv").read_bytes() for f in ("patients", "measurements")}
    assert out["as listed"] == out["reversed"]
    order = [row["patient"] for row in _rows(tmp_path / "reversed" / "patients.csv")]
    assert order == sorted(order) == sorted(export.pseudonym(p.patient, key, clinic_id=data.clinic_id)
                                            for p in data.patients)


def test_zip_export_holds_the_same_files(exported, tmp_path):
    data, _, plain, _ = exported
    blob = export.zip_export(data)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == sorted(export.FILES)
        assert z.read("comparisons.csv") == (plain / "comparisons.csv").read_bytes()


def test_deidentified_export_honours_marketing_consent_and_is_audited(seeded, tmp_path):
    """De-identified exports leave the clinic (teaching, research, marketing): only patients whose consent to
    that use is in force are in them; withdrawing it takes them out again. Every export leaves an audit row."""
    data = tmp_path / "data"
    shutil.copytree(seeded, data)
    with open_store(data) as store:
        before = {e.id for e in store.audit.events(MAIN) if e.action == "export"}  # other tests' exports

    def deid_codes(name):
        r = _cli(data, "export", "--out", str(tmp_path / name), "--deidentify", RELIEF_PSEUDONYM_KEY="k" * 40)
        if r.returncode == 2:  # nobody to export: one line that says why, and no files that look like success
            assert "no patient of this clinic has consented to teaching and marketing use" in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / name).exists()
            return set()
        assert r.returncode == 0, r.stderr
        return {row["patient"] for row in _rows(tmp_path / name / "patients.csv")}

    assert deid_codes("none") == set()  # nobody has given marketing consent
    with open_store(data) as store:
        pid = reportdata.find_patient(store, MAIN, "ZX-4471").id
        store.consents.record(MAIN, pid, "marketing", granted=True, date=dt.date(2025, 2, 3))
    assert len(deid_codes("given")) == 1
    with open_store(data) as store:
        store.consents.record(MAIN, pid, "marketing", granted=False)
    assert deid_codes("withdrawn") == set()
    # The clinic's own (identified) export still holds every patient.
    r = _cli(data, "export", "--out", str(tmp_path / "own"))
    assert r.returncode == 0, r.stderr
    assert {row["patient"] for row in _rows(tmp_path / "own" / "patients.csv")} == {"DEMO", "ZX-4471"}
    with open_store(data) as store:
        rows = [e for e in store.audit.events(MAIN) if e.action == "export" and e.id not in before]
        everyone = {p.id for p in store.list_patients(MAIN)}
    # One row per exported patient (a privacy officer can ask "was this patient's record exported?"): the one
    # de-identified, then the clinic's 2 (the refused empty exports wrote nothing).
    assert len(rows) == 3 and all(e.account == "system" for e in rows)
    assert [e.patient_id for e in rows if "de-identified" in e.detail].count(pid) == 1
    assert {e.patient_id for e in rows if "de-identified" not in e.detail} == everyone


def test_cli_export_of_another_clinic_finds_nothing_of_main(seeded, tmp_path):
    r = _cli(seeded, "export", "--out", str(tmp_path / "x"), "--patient", "DEMO", "--clinic", "NOWHERE")
    assert r.returncode == 2 and "no clinic NOWHERE" in r.stderr
    with open_store(seeded) as store:
        store.accounts.add(Actor.system(), "o_admin", role="admin", password="o" * 12, clinic="OTHERCL")
    r = _cli(seeded, "export", "--out", str(tmp_path / "y"), "--patient", "DEMO", "--clinic", "OTHERCL")
    assert r.returncode == 2 and "no patient with code 'DEMO'" in r.stderr
