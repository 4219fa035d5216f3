"""Tidy data export for a clinic's spreadsheet or a study: a pure function of :class:`~relief_app.reportdata.ExportData`.

Files written to the output folder
----------------------------------
``measurements.csv``  one row per photo × metric: patient, date, weeks since first treatment, region, part
                      (a face region inside a full-face photo; empty = the whole photo), metric, value, unit,
                      algorithm version. Names and units come from :data:`analyzer.METRICS`.
``comparisons.csv``   each follow-up photo against the first photo of its region: change of the roughness index
                      in %, its 95 % interval, the minimal detectable change (MDC) and the verdict.
``treatments.csv``    date, weeks since first treatment, procedure, needle depth, area, notes.
``patients.csv``      code, name, birth date, notes, first visit, numbers of visits and treatments.
``relief_export.xlsx`` the same four tables as sheets of one workbook (``openpyxl``).

De-identified export (``deidentify=True``)
------------------------------------------
* names, birth dates and every free-text note are dropped, and so is a treatment's treated area (typed text);
* regions and parts keep the standard names (:data:`STANDARD_REGIONS`: the library's face regions and "full
  face"); any other name typed at the clinic ("Jane's scar from the 2019 accident") becomes ``other region 1``,
  ``other region 2``, … numbered per patient; a treatment's procedure is kept when it is one of
  :data:`STANDARD_PROCEDURES`, else ``other``;
* patient codes are replaced by stable pseudonyms ``P-<16 hex>``: HMAC-SHA256 of the clinic and the code (or the
  internal id when a patient has no code) under a secret key, so the same patient gets the same pseudonym in every
  export made with the same key, two clinics' patients with the same code get different ones, and nobody without
  the key can compute or reverse it;
* calendar dates are replaced by ``day`` = days since the patient's first visit (intervals between visits and
  treatments are kept; when they happened is not);
* the workbook's own creation/modification dates are set to 1970-01-01;
* a comparison's "taken with another camera" note drops the cameras' names (EXIF make and model, which can name the
  phone's owner).

The key is ``RELIEF_PSEUDONYM_KEY`` when set (any string; keep it with the clinic's other secrets), otherwise a
random 256-bit key created on first use in ``<data dir>/pseudonym.key`` (readable by its owner only). Losing the
key only means that later exports get new pseudonyms; sharing it lets the receiver test guesses of patient codes.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``) are written with
a leading apostrophe; control characters are removed.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import os
import re
import secrets
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyzer.consistency import CAMERA_DIFFERENCE
from analyzer.errors import OptionError
from analyzer.regions import REGION_NAMES
from analyzer.registry import METRICS

from .reportdata import ExportData, PatientExport
from .text import finite, not_a_formula, significance_text
from .visits import regions_from_metrics

__all__ = ["write_export", "zip_export", "private_file", "pseudonym", "pseudonym_key", "KEY_ENV", "KEY_FILE", "FILES", "WORKBOOK"]

KEY_ENV = "RELIEF_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"
WORKBOOK = "relief_export.xlsx"
FILES = ("measurements.csv", "comparisons.csv", "treatments.csv", "patients.csv", WORKBOOK)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ------------------------------------------------------------------------------------------- pseudonyms
def pseudonym_key(data_dir: str | os.PathLike | None) -> bytes:
    """The key of the pseudonyms: ``$RELIEF_PSEUDONYM_KEY``, else ``<data_dir>/pseudonym.key`` (made on first use)."""
    env = os.environ.get(KEY_ENV, "")
    if env.strip():
        return env.strip().encode("utf-8")
    if data_dir is None:
        raise OptionError(f"no pseudonym key: set {KEY_ENV} or give the data folder")
    path = Path(data_dir) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise OptionError(f"{path} holds no usable key; delete it to make a new one (pseudonyms change)")
        return key.encode("ascii")
    with os.fdopen(fd, "w") as f:
        key = secrets.token_hex(32)
        f.write(key + "\n")
    return key.encode("ascii")


def pseudonym(patient, key: bytes, *, clinic_id: int | None) -> str:
    """``P-`` and 16 hex digits of HMAC-SHA256(key, clinic and code) — stable per key and clinic, not reversible
    without the key. The clinic is part of it because codes are unique only within a clinic: with one key for the
    whole server, another clinic's admin could otherwise create patients with chosen codes, export them, and so
    learn the pseudonym of every such code in this clinic's exports (a security review)."""
    ident = f"code:{patient.code}" if patient.code else f"id:{patient.id}"
    return "P-" + hmac.new(key, f"clinic:{clinic_id}|{ident}".encode("utf-8"), hashlib.sha256).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- tables
def _caveats(caveats: Sequence[str], deidentify: bool) -> str:
    """How the photos were taken differently, joined; de-identified without the cameras' names (EXIF make and model:
    file-supplied text that can name the device's owner, which the stored photos themselves no longer carry)."""
    if deidentify:
        caveats = [f"{CAMERA_DIFFERENCE} than the baseline (the cameras' names are left out of a de-identified "
                   "export)" if c.startswith(CAMERA_DIFFERENCE) else c for c in caveats]
    return "; ".join(caveats)


def _weeks(d: dt.date, first_tx: dt.date | None) -> float | None:
    return None if first_tx is None else round((d - first_tx).days / 7.0, 2)


def _num(x) -> float | None:
    return float(x) if finite(x) else None


#: Region names a de-identified export keeps (others are typed text: numbered instead).
STANDARD_REGIONS = (*REGION_NAMES, "full face")
#: Treatment procedures a de-identified export keeps (others: "other").
STANDARD_PROCEDURES = ("micro-needling",)


def _tables(data: ExportData, deidentify: bool, key: bytes | None) -> dict[str, tuple[list[str], list[list]]]:
    when = "day" if deidentify else "date"

    def who(p: PatientExport) -> str:
        return pseudonym(p.patient, key, clinic_id=data.clinic_id) if deidentify \
            else (p.patient.code or f"id:{p.patient.id}")

    def day(p: PatientExport, d: dt.date | None):
        if d is None:
            return None
        if deidentify:
            return (d - p.first_visit).days if p.first_visit else None
        return d.isoformat()

    version = data.algorithm_version
    meas, comp, treat, pats = [], [], [], []
    # De-identified rows go in pseudonym order: the patient list's order is by name, and a reader who knows who
    # took part could match pseudonyms to names by position.
    for p in sorted(data.patients, key=who) if deidentify else data.patients:
        code = who(p)
        first_tx = min((t.date for t in p.treatments), default=None)
        photo_no = {}
        others: dict[str, str] = {}

        def place(name: str) -> str:
            """The region's or part's name; de-identified, typed names are numbered per patient."""
            if not deidentify or not name or name.strip().lower() in STANDARD_REGIONS:
                return name
            return others.setdefault(name, f"other region {len(others) + 1}")

        for date, region, photo_id, values in p.measurements:
            n = photo_no.setdefault(photo_id, len(photo_no) + 1)
            parts = [("", {k: v for k, v in values.items() if k in METRICS})]
            parts += sorted(regions_from_metrics(values).items())
            for part, vals in parts:
                for metric in METRICS:  # registry order
                    if metric not in vals:
                        continue
                    meas.append([code, day(p, date), _weeks(date, first_tx), place(region), place(part), n, metric,
                                 _num(vals[metric]), METRICS[metric].unit, version])
        for region, base, row in p.comparisons:
            comp.append([code, place(region), day(p, base.date), day(p, row.date), _weeks(row.date, first_tx),
                         "roughness_index", _num(base.roughness_index), _num(row.roughness_index),
                         _num(row.change_pct), _num(row.ci_low), _num(row.ci_high), _num(row.mdc_pct),
                         row.significant, significance_text(row.significant, row.change_pct) or "not compared yet",
                         None if row.change_pct is None else not row.caveats, _caveats(row.caveats, deidentify),
                         version])
        for t in p.treatments:
            r = [code, day(p, t.date), _weeks(t.date, first_tx)]
            if deidentify:
                treat.append(r + [t.procedure if t.procedure in STANDARD_PROCEDURES else "other",
                                  _num(t.needle_depth_mm)])
            else:
                treat.append(r + [t.procedure, _num(t.needle_depth_mm), t.area, t.notes])
        if deidentify:
            pats.append([code, p.n_visits, len(p.treatments)])
        else:
            pr = p.patient
            pats.append([code, pr.name, pr.birth_date.isoformat() if pr.birth_date else None, pr.notes,
                         p.first_visit.isoformat() if p.first_visit else None, p.n_visits, len(p.treatments)])
    heads = {
        "measurements": ["patient", when, "weeks_since_first_treatment", "region", "part", "photo", "metric",
                         "value", "unit", "algorithm_version"],
        "comparisons": ["patient", "region", f"baseline_{when}", f"followup_{when}", "weeks_since_first_treatment",
                        "metric", "baseline_value", "followup_value", "change_pct", "ci95_low_pct",
                        "ci95_high_pct", "mdc_pct", "significant", "verdict", "photos_taken_alike", "not_alike_because",
                        "algorithm_version"],
        "treatments": ["patient", when, "weeks_since_first_treatment", "procedure", "needle_depth_mm"]
        + ([] if deidentify else ["area", "notes"]),
        "patients": ["patient", "n_visits", "n_treatments"] if deidentify else
        ["patient", "name", "birth_date", "notes", "first_visit", "n_visits", "n_treatments"],
    }
    rows = {"measurements": meas, "comparisons": comp, "treatments": treat, "patients": pats}
    return {name: (heads[name], rows[name]) for name in heads}


def _cell(v: Any) -> Any:
    """A value safe for a CSV or a spreadsheet cell: text without control characters, never a formula."""
    if isinstance(v, str):
        v = not_a_formula(_CONTROL.sub("", v.encode("utf-8", "replace").decode("utf-8")))
    return v


def private_file(path: str | os.PathLike, mode: str = "wb"):
    """``open(path, mode)`` for writing, readable by its owner only (0600, also when it existed): exports and
    reports hold names, birth dates and notes, and the umask's usual 0644 would let every local user read them.
    A symbolic link at ``path`` is refused, not followed: in a shared folder someone could plant one at the name
    a report's temporary file will have, to have the report written where they can read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        raise


def _write_csv(path: Path, head: Sequence[str], rows: Sequence[Sequence]) -> None:
    with private_file(path, "w") as f:
        w = csv.writer(f)
        w.writerow(head)
        for r in rows:
            w.writerow(["" if v is None else _cell(v) for v in r])


def _write_xlsx(path: Path, tables: dict[str, tuple[list[str], list[list]]], *, scrub_dates: bool) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, (head, rows) in tables.items():
        ws = wb.create_sheet(name)
        ws.append(head)
        for r in rows:
            ws.append([_cell(v) for v in r])
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    if scrub_dates:  # openpyxl stamps "now" into docProps/core.xml on save: no calendar date in a de-identified file
        data = _scrub_core_dates(data)
    with private_file(path) as f:
        f.write(data)


def _scrub_core_dates(xlsx: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?", b"1970-01-01T00:00:00Z", body)
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, body)
    return out.getvalue()


def write_export(data: ExportData, out_dir: str | os.PathLike, *, deidentify: bool = False,
                 key: bytes | None = None) -> list[Path]:
    """Write the CSV files and the workbook of ``data`` into ``out_dir`` (created if missing).

    Parameters
    ----------
    data : ExportData
        From :func:`relief_app.reportdata.gather_export`.
    out_dir : path-like
    deidentify : bool
        Drop names and notes, pseudonymise codes, turn dates into days since the first visit (see module notes).
    key : bytes
        Pseudonym key (:func:`pseudonym_key`); required with ``deidentify``.

    Returns
    -------
    list of Path
        The files written, in the order of :data:`FILES`.
    """
    if deidentify and not key:
        raise OptionError("a de-identified export needs a pseudonym key (RELIEF_PSEUDONYM_KEY or the data folder's)")
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder: its owner's only (the files are 0600 anyway)
    tables = _tables(data, deidentify, key)
    written = []
    for name, (head, rows) in tables.items():
        path = out / f"{name}.csv"
        _write_csv(path, head, rows)
        written.append(path)
    wb = out / WORKBOOK
    _write_xlsx(wb, tables, scrub_dates=deidentify)
    written.append(wb)
    return written


def zip_export(data: ExportData, *, deidentify: bool = False, key: bytes | None = None) -> bytes:
    """The files of :func:`write_export` as one ZIP archive in memory (for a download button)."""
    import tempfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="relief-export-") as tmp:
        files = write_export(data, tmp, deidentify=deidentify, key=key)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                # a fixed timestamp: a de-identified archive carries no date
                z.writestr(zipfile.ZipInfo(f.name, date_time=(1980, 1, 1, 0, 0, 0)), f.read_bytes(),
                           compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()
