"""Plain, frozen values that the service API takes and returns.

No ORM object ever leaves the storage service (:class:`storage.Store`): callers get these dataclasses, which hold no session and
can be cached, pickled and passed between threads. The ``dict``/``list`` fields are fresh copies; treat them
as read-only.

Numbers that could not be computed (NaN in the library) are returned as ``float('nan')`` in the float
fields and in ``metrics``; other JSON fields hold ``None`` where a non-finite number was given, because
JSON (and PostgreSQL) has no NaN.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NewPhoto", "NewMeasurement", "PatientRecord", "PatientSummary", "TreatmentRecord", "VisitRecord",
    "PhotoRecord", "MeasurementRecord", "ComparisonRecord", "ProgressPoint",
]


# --------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class NewMeasurement:
    """A measurement computed by the library, ready to be stored.

    Parameters
    ----------
    algorithm_version : str
        ``analyzer.ALGORITHM_VERSION`` of the code that computed it; the cache key with the photo.
    roughness_index : float
        Headline number (%, lower is smoother); NaN when it could not be computed.
    metrics : dict
        Metric name (as in ``analyzer.METRICS``) -> value.
    scars : list
        Per-scar rows (JSON-serialisable dicts).
    px_per_mm : float or None
        Scale the photo was measured at.
    scale_source : str
        Where the scale came from: ``"card"``, ``"exif"``, ``"user"``, ``"default"``, ...
    quality : dict or None
        Quality-gate report ``{ok, warnings, codes, values}``; stored on the photo.
    """

    algorithm_version: str
    roughness_index: float
    metrics: dict[str, Any] = field(default_factory=dict)
    scars: list[Any] = field(default_factory=list)
    px_per_mm: float | None = None
    scale_source: str = ""
    quality: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewPhoto:
    """A photo to be saved with a visit.

    Parameters
    ----------
    data : bytes
        The file exactly as uploaded (JPEG, PNG, HEIC, ...); stored byte for byte.
    filename : str
        Original file name (kept for display only).
    region : str
        Face region, e.g. ``"left cheek"``.
    capture : dict or None
        Capture metadata (camera, distance, lighting, card, EXIF excerpt, ...), JSON-serialisable.
    measurement : NewMeasurement or None
        A precomputed measurement to store with the photo (e.g. demo seeding, or analysis done before
        saving); the ``analyse`` callback of :meth:`Store.save_visit` is not called for this photo.
    """

    data: bytes
    filename: str
    region: str
    capture: dict[str, Any] | None = None
    measurement: NewMeasurement | None = None


# -------------------------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class PatientRecord:
    id: int
    name: str
    code: str | None
    birth_date: dt.date | None
    notes: str
    created_at: dt.datetime


@dataclass(frozen=True)
class PatientSummary:
    """One row of the patient list, with the latest change vs baseline if one is stored.

    ``change_*`` fields describe the stored comparison (for ``algorithm_version``) whose follow-up photo is
    the most recent; they are ``None`` when no comparison is stored yet.
    """

    id: int
    name: str
    code: str | None
    birth_date: dt.date | None
    n_visits: int
    first_visit: dt.date | None
    last_visit: dt.date | None
    change_region: str | None = None
    change_date: dt.date | None = None
    change_pct: float | None = None
    change_ci_low: float | None = None
    change_ci_high: float | None = None
    change_significant: bool | None = None
    change_caveats: tuple[str, ...] = ()  # how its two photos were taken differently (see ProgressPoint.caveats)


@dataclass(frozen=True)
class TreatmentRecord:
    id: int
    patient_id: int
    date: dt.date
    procedure: str
    needle_depth_mm: float | None
    area: str
    notes: str


@dataclass(frozen=True)
class PhotoRecord:
    id: int
    patient_id: int
    visit_id: int
    visit_date: dt.date
    region: str
    sha256: str
    filename: str
    content_type: str
    width: int | None
    height: int | None
    capture: dict[str, Any]
    quality: dict[str, Any] | None
    created_at: dt.datetime


@dataclass(frozen=True)
class VisitRecord:
    id: int
    patient_id: int
    date: dt.date
    notes: str
    created_at: dt.datetime
    photos: tuple[PhotoRecord, ...] = ()


@dataclass(frozen=True)
class MeasurementRecord:
    id: int
    patient_id: int
    photo_id: int
    algorithm_version: str
    roughness_index: float
    metrics: dict[str, Any]
    scars: list[Any]
    px_per_mm: float | None
    scale_source: str
    created_at: dt.datetime


@dataclass(frozen=True)
class ComparisonRecord:
    id: int
    patient_id: int
    region: str
    baseline_photo_id: int
    followup_photo_id: int
    algorithm_version: str
    change_pct: float
    ci_low: float
    ci_high: float
    mdc_pct: float
    significant: bool
    result: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True)
class ProgressPoint:
    """One visit on a patient's progress chart for one region.

    ``roughness_index``/``metrics`` are ``None`` when the photo has no measurement for the requested
    algorithm version yet (compute it with :meth:`Store.measurement_for`). The baseline point has
    ``is_baseline=True`` and ``change_pct=0.0`` (no interval); follow-ups carry the stored comparison
    against the baseline photo, or ``None`` fields when none is stored. ``caveats`` are the comparison's
    sentences on how differently the two photos were taken (light moved, closer, a photo that failed its quality
    gate: ``analyzer.consistency``); empty when they were taken alike, or when nothing is stored.
    """

    visit_id: int
    date: dt.date
    photo_id: int
    days_since_baseline: int
    weeks_since_first_treatment: float | None
    is_baseline: bool
    roughness_index: float | None
    metrics: dict[str, Any] | None
    change_pct: float | None
    ci_low: float | None
    ci_high: float | None
    significant: bool | None
    caveats: tuple[str, ...] = ()
