"""The "Demo patient": a full synthetic course, so a first start shows real charts at once.

On the first start with an empty data folder, :func:`seed_demo` creates "Demo patient" with the photos in
``sample_images/`` (rendered by :mod:`analyzer.synth` with known relief): a baseline at week 0 with a
treatment, visits at weeks 1, 6 (with a second treatment) and 12. Every photo is measured for real with
:func:`analyzer.measure` (scale from the calibration card in the photo, or the one its sidecar JSON records
when no card is found) and compared with the baseline, through the
same :func:`relief_app.visits.save_new_visit` the upload page uses.

``RELIEF_DEMO=0`` turns it off. Seeding is idempotent: it runs only when the store has no patient and the data
folder has no ``.demo-seeded`` marker (so a deleted demo patient does not come back), and a unique patient code
stops two processes from seeding twice.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

from storage import Actor, Conflict, Store

from .visits import analyse_photo, save_new_visit

__all__ = ["DEMO_NAME", "DEMO_CODE", "DEMO_REGION", "COURSE", "SAMPLES_DIR", "demo_enabled", "seed_demo"]

log = logging.getLogger(__name__)

DEMO_NAME = "Demo patient"
DEMO_CODE = "DEMO"
DEMO_REGION = "left cheek"
#: (file in sample_images/, week of the visit, treatment given that day)
COURSE = (
    ("week00_baseline.jpg", 0, True),
    ("week01.jpg", 1, False),
    ("week06.jpg", 6, True),
    ("week12.jpg", 12, False),
)
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "sample_images"
_MARKER = ".demo-seeded"


def demo_enabled() -> bool:
    """False when ``RELIEF_DEMO`` is ``0`` (or ``false``/``no``/``off``)."""
    return os.environ.get("RELIEF_DEMO", "1").strip().lower() not in {"0", "false", "no", "off"}


def _ensure_samples(samples_dir: Path) -> bool:
    if all((samples_dir / name).is_file() for name, _, _ in COURSE):
        return True
    try:  # regenerate them as `python -m analyzer.synth --samples sample_images` would
        from analyzer import synth

        synth.make_samples(samples_dir)
    except Exception as err:  # the dashboard still works without a demo
        log.warning("demo photos missing in %s and could not be rendered: %s", samples_dir, err)
        return False
    return all((samples_dir / name).is_file() for name, _, _ in COURSE)


def _sidecar_scale(photo: Path) -> float | None:
    try:
        return float(json.loads(photo.with_suffix(".json").read_text())["px_per_mm"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def seed_demo(store: Store, samples_dir: str | os.PathLike | None = None, *, today: dt.date | None = None,
              force: bool = False, actor: Actor | None = None) -> int | None:
    """Create the demo patient when the data folder is new; return its id, or ``None`` when nothing was done.

    Parameters
    ----------
    store : storage.Store
    samples_dir : path, optional
        Folder with the course's photos and sidecars; default the repository's ``sample_images/``.
    today : datetime.date, optional
        Date of the last (week 12) visit; default today, so the course ends now.
    force : bool
        Seed even if the store already has patients or was seeded before (used by tests and benchmarks).
    actor : storage.Actor, optional
        Who creates it; default the server itself acting in clinic ``MAIN`` (the demo patient belongs there).
        The demo patient's consent to clinical photography is recorded as given on the first visit's day.
    """
    marker = Path(store.data_dir) / _MARKER
    actor = actor or store.accounts.clinic_actor("MAIN")
    if not force and (marker.exists() or store.list_patients(actor)):
        return None
    samples = Path(samples_dir) if samples_dir is not None else SAMPLES_DIR
    if not _ensure_samples(samples):
        return None
    try:
        patient = store.create_patient(
            actor, DEMO_NAME, code=DEMO_CODE,
            notes="Synthetic patient rendered with known relief (sample_images/); "
                  "micro-needling at weeks 0 and 6.")
    except Conflict:
        return None  # another process is seeding (or has seeded) it
    end = today or dt.date.today()
    start = end - dt.timedelta(weeks=COURSE[-1][1])
    store.consents.record(actor, patient.id, "clinical", granted=True, date=start)
    for name, week, treated in COURSE:
        path = samples / name
        data = path.read_bytes()
        analysis = analyse_photo(data, name)  # scale from the calibration card in the photo, as in a clinic
        if analysis.scale_source == "default" and _sidecar_scale(path):
            analysis = analyse_photo(data, name, px_per_mm=_sidecar_scale(path))  # no card found: the true scale
        saved = save_new_visit(
            store, actor, patient.id, date=start + dt.timedelta(weeks=week), region=DEMO_REGION,
            uploads=[(data, name)], analyses={analysis.sha256: analysis},
            treatment=({"needle_depth_mm": 1.5, "area": "both cheeks",
                        "notes": "micro-needling, 3 passes"} if treated else None),
            notes=f"week {week} (demo)",
        )
        for outcome in saved.comparisons:
            if outcome.error:
                log.warning("demo: %s not compared with the baseline: %s", name, outcome.error)
    marker.write_text(f"seeded patient {patient.id} on {dt.date.today().isoformat()}\n")
    return patient.id
