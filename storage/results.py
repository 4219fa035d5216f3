"""Results: the library's measurements and comparisons (caches keyed by algorithm version) and the progress
they make (one aggregate of :class:`storage.Store`, whose methods of the same names call these)."""
from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .access import WRITE, Actor, patient_in_scope, require
from .aggregate import Aggregate, _counting_photos, _current_version, _get_photo, _json, _nan, _photo_of
from .errors import OptionError
from .models import Comparison, Measurement, Photo, Treatment, Visit, as_utc, utcnow
from .records import (
    ComparisonRecord,
    MeasurementRecord,
    NewMeasurement,
    ProgressPoint,
)

_MEASUREMENT_FIELDS = (
    "algorithm_version", "roughness_index", "metrics", "scars", "px_per_mm", "scale_source", "quality",
)
_COMPARISON_FIELDS = ("change_pct", "ci_low", "ci_high", "mdc_pct", "significant", "result")


class Results(Aggregate):
    """Measurements, comparisons and progress of a patient's photos."""

    def get_measurement(
        self, actor: Actor, patient_id: int, photo_id: int, algorithm_version: str
    ) -> MeasurementRecord | None:
        """The stored measurement of a photo by one algorithm version, or ``None``."""
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            m = s.scalar(select(Measurement).filter_by(
                patient_id=patient_id, photo_id=photo_id, algorithm_version=algorithm_version))
            if m is None:
                _photo_of(s, patient_id, photo_id)
                return None
            return _measurement_rec(m)

    def save_measurement(
        self,
        actor: Actor,
        patient_id: int,
        photo_id: int,
        algorithm_version: str,
        *,
        roughness_index: float,
        metrics: Mapping[str, Any],
        scars: Sequence[Any] = (),
        px_per_mm: float | None = None,
        scale_source: str = "",
        quality: Mapping[str, Any] | None = None,
    ) -> MeasurementRecord:
        """Store (or replace) the measurement of a photo for one algorithm version; ``quality`` goes on the
        photo."""
        m = _as_new_measurement(dict(
            algorithm_version=algorithm_version, roughness_index=roughness_index, metrics=metrics,
            scars=scars, px_per_mm=px_per_mm, scale_source=scale_source, quality=quality,
        ))
        return self._put_measurement(actor, patient_id, photo_id, m, replace=True)

    def measurement_for(
        self,
        actor: Actor,
        patient_id: int,
        photo_id: int,
        algorithm_version: str,
        compute: Callable[[], NewMeasurement | Mapping[str, Any]],
    ) -> MeasurementRecord:
        """The photo's measurement by ``algorithm_version``, computing and storing it on first use.

        ``compute()`` is called only when none is stored for this (photo, version) — so once per photo, and
        again after the library's version changes. It returns a :class:`NewMeasurement` or a dict with its
        fields (``algorithm_version`` may be left out). It runs outside any transaction; if two processes
        compute at once, the first stored result wins and is returned to both.
        """
        found = self.get_measurement(actor, patient_id, photo_id, algorithm_version)
        if found is not None:
            return found
        require(actor, WRITE)  # before the work: only a practitioner's results are stored
        m = _as_new_measurement(compute(), default_version=algorithm_version)
        if m.algorithm_version != algorithm_version:
            raise OptionError(
                f"compute() returned a measurement by version {m.algorithm_version!r} where "
                f"{algorithm_version!r} was asked; pass the library's ALGORITHM_VERSION to both"
            )
        return self._put_measurement(actor, patient_id, photo_id, m, replace=False)

    def _put_measurement(
        self, actor: Actor, patient_id: int, photo_id: int, m: NewMeasurement, *, replace: bool
    ) -> MeasurementRecord:
        # Storing a result, new or replaced, is a practitioner's: a viewer or a patient link reads results only (it
        # could otherwise store any numbers it liked as the clinic's). Pages compute for them without storing.

        def write(s):
            photo, _ = _get_photo(s, actor, patient_id, photo_id, WRITE)
            row = s.scalar(select(Measurement).filter_by(photo_id=photo_id, algorithm_version=m.algorithm_version))
            if row is not None and not replace:
                return _measurement_rec(row)
            if row is None:
                row = _measurement_row(photo.patient_id, photo_id, m)
                s.add(row)
            else:
                _fill_measurement(row, m)
            if m.quality is not None:
                photo.quality = _json(dict(m.quality))
            s.flush()
            return _measurement_rec(row)

        return self._write_unique(write)

    def _write_unique(self, write):
        """Run ``write(session)`` in a transaction, once more if it lost an insert race.

        Measurements and comparisons are unique per (photos, algorithm version). When another writer inserted
        the same row between our read and our insert, the database refuses ours (IntegrityError); the second
        run then finds that row.
        """
        try:
            with self._tx() as s:
                return write(s)
        except IntegrityError:
            with self._tx() as s:
                return write(s)

    def get_comparison(
        self, actor: Actor, patient_id: int, baseline_photo_id: int, followup_photo_id: int, algorithm_version: str
    ) -> ComparisonRecord | None:
        """The stored comparison of two photos by one algorithm version, or ``None``."""
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            c = s.scalar(select(Comparison).filter_by(
                patient_id=patient_id, baseline_photo_id=baseline_photo_id, followup_photo_id=followup_photo_id,
                algorithm_version=algorithm_version))
            if c is None:
                _photo_of(s, patient_id, baseline_photo_id)
                _photo_of(s, patient_id, followup_photo_id)
                return None
            return _comparison_rec(c)

    def save_comparison(
        self,
        actor: Actor,
        patient_id: int,
        baseline_photo_id: int,
        followup_photo_id: int,
        algorithm_version: str,
        *,
        change_pct: float,
        ci_low: float,
        ci_high: float,
        mdc_pct: float,
        significant: bool,
        result: Mapping[str, Any] | None = None,
    ) -> ComparisonRecord:
        """Store (or replace) a comparison; both photos must be this patient's. The region is the
        follow-up photo's."""
        values = _comparison_values(dict(
            change_pct=change_pct, ci_low=ci_low, ci_high=ci_high, mdc_pct=mdc_pct,
            significant=significant, result=result,
        ))
        return self._put_comparison(
            actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, values, replace=True
        )

    def comparison_for(
        self,
        actor: Actor,
        patient_id: int,
        baseline_photo_id: int,
        followup_photo_id: int,
        algorithm_version: str,
        compute: Callable[[], Mapping[str, Any]],
    ) -> ComparisonRecord:
        """Like :meth:`measurement_for` for comparisons: ``compute()`` returns a dict with ``change_pct,
        ci_low, ci_high, mdc_pct, significant`` and optionally ``result`` (the full JSON)."""
        found = self.get_comparison(actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version)
        if found is not None:
            return found
        require(actor, WRITE)  # before the work: only a practitioner's results are stored
        values = _comparison_values(compute())
        return self._put_comparison(
            actor, patient_id, baseline_photo_id, followup_photo_id, algorithm_version, values, replace=False
        )

    def _put_comparison(
        self, actor: Actor, patient_id: int, baseline_id: int, followup_id: int, version: str, values: dict,
        *, replace: bool
    ) -> ComparisonRecord:
        if baseline_id == followup_id:
            raise OptionError("baseline and follow-up are the same photo; pick a photo from a later visit")

        def write(s):
            pid = patient_in_scope(s, actor, patient_id, WRITE).id  # (as for measurements)
            _photo_of(s, pid, baseline_id)
            followup, _ = _photo_of(s, pid, followup_id)
            row = s.scalar(select(Comparison).filter_by(
                baseline_photo_id=baseline_id, followup_photo_id=followup_id, algorithm_version=version))
            if row is not None and not replace:
                return _comparison_rec(row)
            if row is None:
                row = Comparison(
                    patient_id=pid, region=followup.region, baseline_photo_id=baseline_id,
                    followup_photo_id=followup_id, algorithm_version=version, created_at=utcnow(),
                )
                s.add(row)
            for k, v in values.items():
                setattr(row, k, v)
            s.flush()
            audit.record(s, actor, "compare", patient_id=pid,
                         detail=f"photo {baseline_id} -> {followup_id}: " + (
                             "n/a" if row.change_pct is None else f"{row.change_pct:+.1f} %"))
            return _comparison_rec(row)

        return self._write_unique(write)

    def progress(
        self, actor: Actor, patient_id: int, region: str, *, algorithm_version: str | None = None
    ) -> list[ProgressPoint]:
        """One point per visit that has a photo of ``region``, oldest first — three queries in all.

        Parameters
        ----------
        algorithm_version : str, optional
            Which stored measurements/comparisons to read; default the library's current
            ``ALGORITHM_VERSION``. Visits whose photo has none for that version come with ``None`` values.

        Notes
        -----
        Each visit is represented by the photo that counts for it (:func:`_counting_photos`: its first uploaded
        measurable photo of the region), the same photo the patients list, the reports and the New-visit page
        use. The baseline is :meth:`baseline_photo`; visits before it (only unmeasurable photos) have no
        change. ``weeks_since_first_treatment`` counts from the patient's earliest treatment (``None`` without
        treatments; negative before it).
        """
        version = algorithm_version or _current_version()
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            first_tx = (
                select(func.min(Treatment.date)).where(Treatment.patient_id == patient_id).scalar_subquery()
            )
            counting = _counting_photos(Photo.patient_id == patient_id, Photo.region == region)
            rows = s.execute(
                select(
                    Visit.id, Visit.date, counting.c.photo_id, counting.c.unmeasurable,
                    Measurement.roughness_index, Measurement.metrics, Measurement.id.label("m_id"),
                    first_tx.label("first_tx"),
                )
                .join(counting, counting.c.visit_id == Visit.id)
                .outerjoin(
                    Measurement,
                    and_(Measurement.photo_id == counting.c.photo_id, Measurement.algorithm_version == version),
                )
                .where(Visit.patient_id == patient_id)
                .order_by(Visit.date, Visit.id)
            ).all()
            if not rows:
                return []
            base = next((r for r in rows if not r.unmeasurable), None)
            baseline_id = base.photo_id if base is not None else None
            comps = {
                c.followup_photo_id: c
                for c in s.scalars(
                    select(Comparison).where(
                        Comparison.patient_id == patient_id,
                        Comparison.baseline_photo_id == baseline_id,
                        Comparison.algorithm_version == version,
                    )
                )
            }
        base_date = (base or rows[0]).date
        first_tx_date = rows[0].first_tx
        if isinstance(first_tx_date, str):  # SQLite returns an aggregate of dates as text
            first_tx_date = dt.date.fromisoformat(first_tx_date)
        points = []
        for r in rows:
            c = comps.get(r.photo_id)
            if r.photo_id == baseline_id:
                change = dict(change_pct=0.0, ci_low=None, ci_high=None, significant=False)
            elif c is not None:
                change = dict(change_pct=_nan(c.change_pct), ci_low=_nan(c.ci_low), ci_high=_nan(c.ci_high),
                              significant=bool(c.significant), caveats=comparison_caveats(c.result))
            else:
                change = dict(change_pct=None, ci_low=None, ci_high=None, significant=None)
            measured = r.m_id is not None
            points.append(
                ProgressPoint(
                    visit_id=r.id, date=r.date, photo_id=r.photo_id,
                    days_since_baseline=(r.date - base_date).days,
                    weeks_since_first_treatment=(
                        None if first_tx_date is None else (r.date - first_tx_date).days / 7.0
                    ),
                    is_baseline=r.photo_id == baseline_id,
                    roughness_index=_nan(r.roughness_index) if measured else None,
                    metrics=_metrics_out(r.metrics) if measured else None,
                    **change,
                )
            )
        return points

    def result_versions(self, actor: Actor, patient_id: int, region: str) -> list[str]:
        """Algorithm versions that have stored comparisons of ``region``'s photos, newest first (e.g. the current
        one and the one before an upgrade, whose results are kept)."""
        with self._tx() as s:
            patient_id = patient_in_scope(s, actor, patient_id).id
            found = s.scalars(
                select(Comparison.algorithm_version).where(
                    Comparison.patient_id == patient_id, Comparison.region == region
                ).distinct()
            ).all()
        return sorted(found, key=version_key, reverse=True)


def version_key(version: str) -> tuple:
    """Sort key of an algorithm version: "1.10.0" after "1.9.2", "1.3" equal to "1.3.0", and a pre-release such as
    "1.4.0rc1" or "1.4.0-dev" before its release (and after "1.3.9")."""
    m = re.match(r"\s*(\d+(?:\.\d+)*)(.*)$", str(version))
    if m is None:
        return ((), 0, str(version))  # (not a version number: before every one)
    release = [int(x) for x in m.group(1).split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    rest = m.group(2).strip(".-_ ")
    return (tuple(release), 1 if not rest else 0, rest)


def comparison_caveats(result: Mapping[str, Any] | None) -> tuple[str, ...]:
    """How the two photos of a stored comparison were taken differently: the ``differences`` of its consistency
    check (``analyzer.consistency.assess``; the ``result`` JSON of ``analyzer.Comparison.to_dict``), else ``()``.
    Results stored without that list have none."""
    k = (result or {}).get("consistency") if isinstance(result, Mapping) else None
    diffs = k.get("differences") if isinstance(k, Mapping) else None
    if not isinstance(diffs, (list, tuple)):
        return ()
    return tuple(str(a) for a in diffs if a)


def _float_in(x: Any) -> float | None:
    """Value for a nullable float column: NaN/inf/None are stored as NULL."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _metrics_out(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (float("nan") if v is None else v) for k, v in (metrics or {}).items()}


def _as_new_measurement(obj: Any, default_version: str | None = None) -> NewMeasurement:
    if isinstance(obj, NewMeasurement):
        return obj
    if not isinstance(obj, Mapping):
        raise OptionError(
            f"a measurement must be a storage.NewMeasurement or a dict, not {type(obj).__name__}; "
            "convert the library's result first"
        )
    unknown = set(obj) - set(_MEASUREMENT_FIELDS)
    if unknown:
        raise OptionError(
            f"unknown measurement field {', '.join(sorted(unknown))}; use {', '.join(_MEASUREMENT_FIELDS)}"
        )
    d = dict(obj)
    d.setdefault("algorithm_version", default_version)
    if not d.get("algorithm_version"):
        raise OptionError("the measurement has no algorithm_version; pass analyzer.ALGORITHM_VERSION")
    if "roughness_index" not in d:
        raise OptionError("the measurement has no roughness_index; pass the library's headline number (NaN if none)")
    return NewMeasurement(**d)


def _fill_measurement(row: Measurement, m: NewMeasurement) -> None:
    row.roughness_index = _float_in(m.roughness_index)
    row.metrics = _json(dict(m.metrics or {}))
    row.scars = _json(list(m.scars or []))
    row.px_per_mm = _float_in(m.px_per_mm)
    row.scale_source = str(m.scale_source or "")[:40]


def _measurement_row(patient_id: int, photo_id: int, m: NewMeasurement) -> Measurement:
    row = Measurement(
        patient_id=patient_id, photo_id=photo_id, algorithm_version=str(m.algorithm_version)[:40],
        created_at=utcnow(),
    )
    _fill_measurement(row, m)
    return row


def _comparison_values(obj: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise OptionError(f"a comparison must be a dict, not {type(obj).__name__}; convert the library's result first")
    unknown = set(obj) - set(_COMPARISON_FIELDS)
    if unknown:
        raise OptionError(f"unknown comparison field {', '.join(sorted(unknown))}; use {', '.join(_COMPARISON_FIELDS)}")
    missing = {"change_pct", "ci_low", "ci_high", "mdc_pct", "significant"} - set(obj)
    if missing:
        raise OptionError(f"the comparison lacks {', '.join(sorted(missing))}; pass every field (NaN if unknown)")
    return dict(
        change_pct=_float_in(obj["change_pct"]), ci_low=_float_in(obj["ci_low"]),
        ci_high=_float_in(obj["ci_high"]), mdc_pct=_float_in(obj["mdc_pct"]),
        significant=bool(obj["significant"]), result=_json(dict(obj.get("result") or {})),
    )


def _measurement_rec(m: Measurement) -> MeasurementRecord:
    return MeasurementRecord(
        id=m.id, patient_id=m.patient_id, photo_id=m.photo_id, algorithm_version=m.algorithm_version,
        roughness_index=_nan(m.roughness_index), metrics=_metrics_out(m.metrics), scars=list(m.scars or []),
        px_per_mm=m.px_per_mm, scale_source=m.scale_source or "", created_at=as_utc(m.created_at),
    )


def _comparison_rec(c: Comparison) -> ComparisonRecord:
    return ComparisonRecord(
        id=c.id, patient_id=c.patient_id, region=c.region, baseline_photo_id=c.baseline_photo_id,
        followup_photo_id=c.followup_photo_id, algorithm_version=c.algorithm_version,
        change_pct=_nan(c.change_pct), ci_low=_nan(c.ci_low), ci_high=_nan(c.ci_high),
        mdc_pct=_nan(c.mdc_pct), significant=bool(c.significant), result=dict(c.result or {}),
        created_at=as_utc(c.created_at),
    )
