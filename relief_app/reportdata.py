"""Everything a PDF report or a data export needs, read from storage in one place.

This is the only module of the report and the export that talks to :class:`storage.Store`. It reads the same
services the dashboard's pages read — ``store.progress`` (the Progress page's numbers),
:func:`relief_app.charts.progress_series` (its chart points), :func:`relief_app.text.visit_sentence` (the
visit-mode sentence) and :func:`relief_app.visits.compare_views` (the aligned before/after pair of the Compare
page and visit mode) — and returns plain frozen values. :mod:`relief_app.report` and :mod:`relief_app.export`
are pure functions of those values.

Every function takes the acting account (``actor``) after the store and passes it to every storage call, so a
report or an export shows exactly what that account may see (its clinic; for a patient link, one patient).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import analyzer
from analyzer.errors import ReliefError
from analyzer.registry import METRICS
from storage import NotFound, PatientRecord, ProgressPoint, Store, TreatmentRecord

from . import charts, visits
from .text import PROGRESS_METRICS, finite

__all__ = ["VisitRow", "BeforeAfter", "RegionReport", "ReportData", "PatientExport", "ExportData",
           "SECONDARY_METRICS", "find_patient", "gather_report", "gather_export"]

#: The measures shown next to the roughness index in the report's visit table (registry names).
SECONDARY_METRICS = tuple(m for m in PROGRESS_METRICS if m != "roughness_index")


@dataclass(frozen=True)
class VisitRow:
    """One visit of one region: the Progress page's numbers plus the comparison's MDC."""

    date: dt.date
    weeks: float
    days_since_first_visit: int
    photo_id: int
    is_baseline: bool
    roughness_index: float | None
    change_pct: float | None
    ci_low: float | None
    ci_high: float | None
    mdc_pct: float | None
    significant: bool | None
    metrics: dict[str, float] = field(default_factory=dict)  # registry name -> value (whole photo)
    caveats: tuple[str, ...] = ()  # how the photos were taken differently (empty: taken alike)


@dataclass(frozen=True)
class BeforeAfter:
    """The aligned first-vs-latest pair of a region (uint8 RGB on the baseline's grid), or why there is none."""

    before_date: dt.date
    after_date: dt.date
    before: np.ndarray | None = field(default=None, repr=False)
    after: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None


@dataclass(frozen=True)
class RegionReport:
    name: str
    rows: tuple[VisitRow, ...]
    series: tuple[charts.SeriesPoint, ...]     # the Progress chart's points (roughness index)
    sentence: str                              # the visit-mode sentence for the latest visit
    pair: BeforeAfter | None                   # None with a single visit
    # an update of the analysis read these visits differently (the Progress page's note): the earlier version
    # and relief_app.visits.recomputed_changes; (None, ()) when no earlier version computed the region
    recomputed_from: str | None = None
    recomputed: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ReportData:
    """All a progress report shows; :func:`relief_app.report.render_pdf` draws it and reads nothing else."""

    clinic: str
    patient: PatientRecord
    treatments: tuple[TreatmentRecord, ...]
    n_visits: int
    first_visit: dt.date | None
    last_visit: dt.date | None
    first_treatment: dt.date | None
    regions: tuple[RegionReport, ...]
    generated_at: dt.datetime
    algorithm_version: str


@dataclass(frozen=True)
class PatientExport:
    patient: PatientRecord
    treatments: tuple[TreatmentRecord, ...]
    first_visit: dt.date | None
    n_visits: int
    # (photo date, region, photo id, {metric key: value}) for each measured photo, oldest first
    measurements: tuple[tuple[dt.date, str, int, dict[str, float]], ...]
    comparisons: tuple[tuple[str, VisitRow, VisitRow], ...]  # (region, baseline row, follow-up row)


@dataclass(frozen=True)
class ExportData:
    """All a data export writes; :func:`relief_app.export.write_export` reads nothing else."""

    patients: tuple[PatientExport, ...]
    generated_at: dt.datetime
    algorithm_version: str
    #: The clinic the patients belong to (the exporting actor's): part of every pseudonym, since patient codes are
    #: unique only within a clinic.
    clinic_id: int | None = None


# ------------------------------------------------------------------------------------------------ reads
def find_patient(store: Store, actor: Any, code: str) -> PatientRecord:
    """The patient whose code is ``code`` (exact match first, then ignoring case).

    Raises :class:`storage.NotFound` with a one-line message when there is none (or several ignoring case).
    """
    code = str(code or "").strip()
    if code:
        found = store.list_patients(actor, code)
        exact = [p for p in found if p.code == code]
        loose = [p for p in found if (p.code or "").casefold() == code.casefold()]
        match = exact or loose
        if len(match) == 1:
            return store.patient(actor, match[0].id)
    raise NotFound(f"no patient with code {code!r}; check the code on the Patients page")


def _rows(store: Store, actor: Any, patient_id: int, points: Sequence[ProgressPoint],
          version: str) -> list[VisitRow]:
    series = charts.progress_series(points, "roughness_index")
    first = points[0] if points else None
    out = []
    for p, s in zip(points, series):
        mdc = None
        if not p.is_baseline and first is not None:
            c = store.get_comparison(
                actor, patient_id, first.photo_id, p.photo_id, version)
            mdc = float(c.mdc_pct) if c is not None and finite(c.mdc_pct) else None
        metrics = {k: float(v) for k, v in (p.metrics or {}).items() if k in METRICS and finite(v)}
        out.append(VisitRow(
            date=p.date, weeks=float(s.weeks), days_since_first_visit=int(p.days_since_baseline),
            photo_id=p.photo_id, is_baseline=p.is_baseline,
            roughness_index=float(p.roughness_index) if finite(p.roughness_index) else None,
            change_pct=s.change, ci_low=s.low, ci_high=s.high, mdc_pct=mdc, significant=s.significant,
            metrics=metrics, caveats=s.caveats))
    return out


def gather_report(store: Store, actor: Any, patient_id: int, *, region: str | None = None, clinic: str = "",
                  now: dt.datetime | None = None) -> ReportData:
    """Read everything the progress report of one patient shows.

    Parameters
    ----------
    store : storage.Store
    actor : storage.Actor
        The acting account; storage scopes every read by it.
    patient_id : int
    region : str, optional
        One region only; default every region of the patient.
    clinic : str
        The clinic's name for the header.
    now : datetime, optional
        Generation time (aware); default now (UTC).

    Raises
    ------
    storage.NotFound
        Unknown patient, or a region the patient has no photo of (one-line message).

    Notes
    -----
    Like the Progress page, results missing for the current algorithm version (e.g. after an upgrade) are
    computed and stored first (for an account that may store them; for a viewer the sentence comes from the
    before/after pair computed for the report); a photo that cannot be measured or aligned shows as "not measured" / "not
    compared yet". The aligned before/after pair is computed like the Compare page does.
    """
    version = analyzer.ALGORITHM_VERSION
    patient = store.patient(actor, patient_id)
    known = store.regions(actor, patient_id)
    if region is not None:
        if region not in known:
            raise NotFound(f"patient {patient.code or patient.id} has no photos of region {region!r}; "
                           f"regions: {', '.join(known) or 'none yet'}")
        known = [region]
    treatments = tuple(store.treatments(actor, patient_id))
    all_visits = store.visits(actor, patient_id)
    out = []
    for name in known:
        points = store.progress(
            actor, patient_id, name, algorithm_version=version)
        if visits.lacking_results(points) and visits.complete_results(store, actor, patient_id, points)[0]:
            points = store.progress(
                actor, patient_id, name, algorithm_version=version)
        rows = _rows(store, actor, patient_id, points, version)
        series = tuple(charts.progress_series(points, "roughness_index"))
        last = series[-1] if series else None
        pair, values = None, None
        ids = visits.before_after_ids(points)
        if ids is not None:
            by_id = {ph.id: ph for ph in store.photos(actor, patient_id, region=name)}
            first, latest = by_id[ids[0]], by_id[ids[1]]
            try:
                view = visits.compare_views(
                    store, actor, patient_id, first.id, latest.id)
                pair = BeforeAfter(first.visit_date, latest.visit_date, view["baseline"], view["followup"])
                values = view["values"]
            except ReliefError as err:
                pair = BeforeAfter(first.visit_date, latest.visit_date, error=str(err))
        sentence = visits.latest_sentence(last, values)  # (a change not stored: the pair's, just computed)
        earlier, moved = visits.recomputed(store, actor, patient_id, name, points, version=version)
        out.append(RegionReport(name=name, rows=tuple(rows), series=series, sentence=sentence, pair=pair,
                                recomputed_from=earlier if moved else None, recomputed=tuple(moved)))
    dates = [v.date for v in all_visits]
    return ReportData(
        clinic=clinic, patient=patient, treatments=treatments, n_visits=len(all_visits),
        first_visit=min(dates) if dates else None, last_visit=max(dates) if dates else None,
        first_treatment=min((t.date for t in treatments), default=None), regions=tuple(out),
        generated_at=now or dt.datetime.now(dt.timezone.utc), algorithm_version=version)


def log_export(store: Store, actor: Any, data: ExportData, *, patient_id: int | None, detail: str) -> None:
    """Audit an export: one row for the patient asked for, or, for the whole clinic, one row per patient in it
    (so "was this patient's record exported?" has an answer)."""
    ids = [patient_id] if patient_id is not None else [p.patient.id for p in data.patients]
    store.audit.log_each(actor, "export", ids, detail=detail)


def _teaching_allowed(status) -> bool:
    """Whether a patient's numbers may leave the clinic de-identified (:func:`gather_export`)."""
    return status.marketing_granted and not status.clinical_withdrawn


def gather_export(store: Store, actor: Any, *, patient_id: int | None = None, teaching: bool = False,
                  now: dt.datetime | None = None) -> ExportData:
    """Read everything a data export writes: one patient, or every patient the actor may see.

    ``teaching=True`` (de-identified exports, which leave the clinic for teaching, research or marketing): only
    patients whose consent to teaching and marketing use is in force — never given or withdrawn means left out —
    and whose consent to clinical photography is not withdrawn (their numbers come from the photos they no longer
    want taken: when in doubt, left out).

    Raises :class:`storage.NotFound` for an unknown ``patient_id``.
    """
    version = analyzer.ALGORITHM_VERSION
    if patient_id is None:
        ids = [p.id for p in store.list_patients(actor)]
    else:
        ids = [patient_id]
    if teaching:
        ids = [pid for pid in ids if _teaching_allowed(store.consents.status(actor, pid))]
    out = []
    for pid in ids:
        patient = store.patient(actor, pid)
        treatments = tuple(store.treatments(actor, pid))
        all_visits = store.visits(actor, pid)
        measurements = []
        for v in all_visits:
            for ph in v.photos:
                m = store.get_measurement(actor, pid, ph.id, version)
                if m is None:
                    continue
                values = {k: float(x) for k, x in (m.metrics or {}).items() if isinstance(x, (int, float))}
                measurements.append((v.date, ph.region, ph.id, values))
        comparisons = []
        for name in store.regions(actor, pid):
            points = store.progress(actor, pid, name, algorithm_version=version)
            rows = _rows(store, actor, pid, points, version)
            comparisons += [(name, rows[0], r) for r in rows[1:]]
        out.append(PatientExport(
            patient=patient, treatments=treatments, n_visits=len(all_visits),
            first_visit=min((v.date for v in all_visits), default=None),
            measurements=tuple(measurements), comparisons=tuple(comparisons)))
    return ExportData(patients=tuple(out), generated_at=now or dt.datetime.now(dt.timezone.utc),
                      algorithm_version=version, clinic_id=getattr(actor, "clinic_id", None))
