"""What the patient-data aggregates share: a transaction, the photo files, and the rules every one of them reads.

:class:`Aggregate` is the base of :class:`~storage.patients.Patients`, :class:`~storage.visits.Visits` and
:class:`~storage.results.Results` (one session factory and one photo store, shared with :class:`~storage.Store`).
:func:`_counting_photos` is the one rule for which photo counts for a visit; :func:`_photo_of` the one lookup of a
patient's photo.
"""
from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, case, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from .access import READ, Actor, patient_in_scope
from .blobs import BlobStore
from .errors import NotFound, OptionError
from .models import Measurement, Photo, Visit


class Aggregate:
    """One aggregate of the patient data: its methods run in short all-or-nothing transactions."""

    def __init__(self, sessions: sessionmaker, blobs: BlobStore):
        self._sessions = sessions
        self.blobs = blobs

    def _forget(self, *, retries: int = 30) -> None:
        """After a deletion: on SQLite, move the write-ahead log into the database and empty it, so deleted rows
        are not kept in the log's old pages (``secure_delete`` zeroes them in the database itself).

        A reader in the middle of a transaction keeps the log from being emptied: the checkpoint then waits at
        most a second (not the 30 s of a write), and is tried again every 10 s on a background thread (at most
        ``retries`` times) instead of holding up the deletion's page.
        """
        with self._sessions() as s:
            if s.get_bind().dialect.name != "sqlite":
                return
            s.execute(text("PRAGMA busy_timeout=1000"))
            try:
                busy = s.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).first()[0]
            finally:
                s.execute(text("PRAGMA busy_timeout=30000"))
        if busy and retries > 0:
            timer = threading.Timer(10.0, self._forget, kwargs={"retries": retries - 1})
            timer.daemon = True
            timer.start()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One all-or-nothing transaction: committed on success, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def _remove_unreferenced(self, files: set[tuple[str, str]]) -> None:
        """After a delete: remove the files among ``(sha256, content_type)`` that no row uses any more."""
        if not files:
            return
        with self.blobs.guard():  # (a save about to commit a row for one of them repairs it under the same guard)
            with self._tx() as s:
                still = set(s.scalars(select(Photo.sha256).where(Photo.sha256.in_({sha for sha, _ in files}))))
            for sha, ctype in files:
                if sha not in still:
                    self.blobs.discard(sha, ctype)


def _counting_photos(*where, correlate=None):
    """The photo that counts for each (visit, region): its first uploaded photo that is not known to be
    unmeasurable (else its first photo), with ``unmeasurable`` telling which. One rule for the progress chart,
    the baseline, the patients list and the reports: a visit with two photos of a region (a retake, or the same
    region chosen twice) must not show one number on one page and another on the next.

    Columns: ``photo_id``, ``visit_id``, ``region``, ``unmeasurable``. A photo is unmeasurable when it has
    measurements and none of them gave a value (black, blank, all glare, kept despite the quality gate); one not
    yet measured counts as measurable.
    """
    def measured(has_value: bool):
        value = Measurement.roughness_index
        return (select(Measurement.id)
                .where(Measurement.photo_id == Photo.id, value.is_not(None) if has_value else value.is_(None))
                .exists())

    unmeasurable = and_(measured(False), ~measured(True))
    rank = func.row_number().over(partition_by=(Photo.visit_id, Photo.region),
                                  order_by=(case((unmeasurable, 1), else_=0), Photo.id))
    q = select(Photo.id.label("photo_id"), Photo.visit_id, Photo.region,
               unmeasurable.label("unmeasurable"), rank.label("rank")).where(*where)
    if correlate is not None:
        q = q.correlate(correlate)
    inner = q.subquery()
    return select(inner.c.photo_id, inner.c.visit_id, inner.c.region, inner.c.unmeasurable) \
        .where(inner.c.rank == 1).subquery()


def _get_photo(s: Session, actor: Actor, patient_id: int, photo_id: int, right: str = READ
               ) -> tuple[Photo, dt.date]:
    """The photo and its visit's date, after the actor's access to the patient is checked."""
    patient_id = patient_in_scope(s, actor, patient_id, right).id
    return _photo_of(s, patient_id, photo_id)


def _photo_of(s: Session, patient_id: int, photo_id: int) -> tuple[Photo, dt.date]:
    """The patient's photo (for callers that have checked the patient with ``patient_in_scope`` already)."""
    row = s.execute(
        select(Photo, Visit.date)
        .join(Visit, Visit.id == Photo.visit_id)
        .where(Photo.id == photo_id, Photo.patient_id == patient_id)
    ).first()
    if row is None:
        raise NotFound(f"photo {photo_id!r} is not one of this patient's photos; pick a photo from their visits")
    return row[0], row[1]


def _to_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise OptionError(f"{what} {value!r} is not a date; give a datetime.date or 'YYYY-MM-DD'")


def _past_date(value: Any, what: str, fix: str) -> dt.date:
    """``value`` as a date that has been (:func:`_to_date`): one after tomorrow (a clinic east of the server's time
    zone may already be a day ahead) or before 1900 is a typed-in mistake, refused with ``fix`` before anything is
    written. Every date a record carries passes here, whichever page or script sends it."""
    day = _to_date(value, what)
    if day > dt.date.today() + dt.timedelta(days=1):
        raise OptionError(f"the {what} {day.isoformat()} is in the future; {fix}")
    if day < dt.date(1900, 1, 1):
        raise OptionError(f"the {what} {day.isoformat()} is before 1900; check the year")
    return day


def _json(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats -> None, numpy scalars/arrays -> Python, tuples -> lists."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _json(obj.tolist())
    if hasattr(obj, "item"):
        return _json(obj.item())
    raise OptionError(f"cannot store a {type(obj).__name__} as JSON; convert it to numbers, text, lists or dicts")


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _current_version() -> str:
    from analyzer.registry import ALGORITHM_VERSION

    return ALGORITHM_VERSION
