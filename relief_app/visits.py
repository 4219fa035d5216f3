"""What the "New visit" and "Compare" pages do, without Streamlit: analyse uploads, save a visit, compare photos.

Kept apart from the pages so it can be tested directly (AppTest cannot drive every widget) and reused by the
demo seeding. Data goes only through :class:`storage.Store`; analysis only through :mod:`analyzer`.

Errors a practitioner can fix are :class:`analyzer.errors.ReliefError` (``storage.StorageError`` is one) with
a one-line message; pages show ``str(err)``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import analyzer
from analyzer.comparison import compare as _compare
from analyzer.errors import ImageError, OptionError, ReliefError
from analyzer.measurement import DEFAULT_FIELD_MM
from analyzer.measurement import measure as _measure
from storage import (Actor, ComparisonRecord, NewMeasurement, NewPhoto, PhotoRecord, Store, VisitRecord,
                     comparison_caveats)
from storage.access import WRITE
from storage.results import version_key

from .text import change_text, visit_sentence

__all__ = [
    "PhotoAnalysis", "SavedVisit", "ComparisonOutcome", "analyse_photo", "save_new_visit", "sha256",
    "compare_and_store", "run_compare", "comparison_values", "compare_views", "given_scale", "SCALE_LABELS",
    "DEFAULT_FIELD_MM", "REGION_PREFIX", "REGION_METRICS", "flatten_regions", "regions_from_metrics",
    "region_spec_json", "photo_size", "box_from_percent", "NO_FACE", "before_after_ids", "latest_sentence",
]

#: How the scale of a photo was obtained, in words ("scale: card / given / assumed").
SCALE_LABELS = {"card": "card", "given": "given", "default": "assumed", "face": "from the eyes",
                "registration": "from the baseline"}

#: Per-region metrics are stored flat in the measurement's ``metrics`` dict, one float per key
#: ``"region:<region name>:<metric>"`` (e.g. ``"region:left cheek:roughness_index"``), so that every reader
#: that looks metrics up by name (progress chart, storage's NaN handling) keeps working unchanged.
REGION_PREFIX = "region:"
#: The per-region numbers :func:`analyzer.measure` reports (``area_cm2`` is the measured skin area).
REGION_METRICS = ("roughness_index", "fine_texture_index", "scar_density", "pore_density", "area_cm2")
#: The start of the library's warning when ``regions="face"`` finds no face.
NO_FACE = "no face found"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PhotoAnalysis:
    """The library's verdict on one uploaded photo, before anything is saved.

    ``error`` holds the one-line message when the file cannot be read or measured at all (then
    ``measurement`` is None and the photo cannot be saved). Otherwise ``quality_ok`` says whether it passed the
    quality gate; a failing photo can still be kept on purpose.
    """

    filename: str
    sha256: str
    error: str | None = None
    quality_ok: bool = False
    warnings: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    scale_source: str = ""
    px_per_mm: float | None = None
    roughness_index: float = float("nan")
    measurement: NewMeasurement | None = field(default=None, repr=False)
    regions: dict = field(default_factory=dict)
    region_outlines: dict = field(default_factory=dict, repr=False)
    region_spec: Any = None
    size: tuple[int, int] | None = None
    camera: str | None = None  # EXIF make and model, read before the metadata is removed from the stored file

    @property
    def readable(self) -> bool:
        return self.error is None and self.measurement is not None

    @property
    def no_face(self) -> bool:
        """Measured as a full-face photo (``regions="face"``) but no face was found in it."""
        return self.region_spec == "face" and any(w.startswith(NO_FACE) for w in self.warnings)

    @property
    def scale_label(self) -> str:
        return SCALE_LABELS.get(self.scale_source, self.scale_source or "unknown")


def _safe_name(filename: str) -> str:
    name = os.path.basename(str(filename or "").replace("\\", "/")) or "photo"
    name = re.sub(r"[^\w.\- ]+", "_", name)
    stem, dot, ext = name.rpartition(".")
    if len(name.encode()) > 120:  # file systems count bytes (255), and non-ASCII letters take several
        keep = (stem if dot else name).encode()[:100].decode(errors="ignore")
        name = f"{keep}.{ext[:10]}" if dot else keep
    return name if name not in {".", ".."} else "photo"


def flatten_regions(regions: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{"left cheek": {"roughness_index": 4.1, …}}`` -> ``{"region:left cheek:roughness_index": 4.1, …}``.

    Values become plain floats (NaN where the library could not compute one).
    """
    out = {}
    for name, values in (regions or {}).items():
        for metric, v in (values or {}).items():
            try:
                out[f"{REGION_PREFIX}{name}:{metric}"] = float("nan") if v is None else float(v)
            except (TypeError, ValueError):
                continue
    return out


def regions_from_metrics(metrics: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """The inverse of :func:`flatten_regions`, read from a stored measurement's ``metrics`` (other keys ignored).

    Region names may contain ``:``; metric names never do.
    """
    out: dict[str, dict[str, float]] = {}
    for key, v in (metrics or {}).items():
        if not isinstance(key, str) or not key.startswith(REGION_PREFIX):
            continue
        name, sep, metric = key[len(REGION_PREFIX):].rpartition(":")
        if not sep or not name:
            continue
        out.setdefault(name, {})[metric] = float("nan") if v is None else float(v)
    return out


def region_spec_json(regions) -> Any:
    """The ``regions`` option as JSON (kept in the photo's capture so a re-measurement asks the same).

    ``"face"`` stays ``"face"``; boxes become ``{name: [x, y, w, h]}``; anything empty is ``None``.
    """
    if not regions:
        return None
    if isinstance(regions, str):
        return regions
    return {str(n): [int(v) for v in box] for n, box in dict(regions).items()}


def photo_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a photo file as the library sees it (upright, EXIF orientation applied).

    Read from the header only; ``None`` when it cannot be read.
    """
    try:
        from PIL import Image

        import analyzer.loading  # (registers the HEIC/HEIF opener with Pillow)

        # only the loader's formats: what it refuses has no size here either, and no other decoder sees the file
        with Image.open(io.BytesIO(data), formats=analyzer.loading._PIL_FORMATS) as im:
            w, h = im.size
            try:
                turned = int(im.getexif().get(0x0112, 1)) in (5, 6, 7, 8)
            except Exception:  # a broken EXIF block: the library ignores it too
                turned = False
            return (h, w) if turned and im.format != "TIFF" else (w, h)
    except Exception:
        return None


def box_from_percent(x: float, y: float, w: float, h: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box given in percent of a photo (left, top, width, height) in the photo's pixels, kept inside it.

    A width or height reaching past the photo's edge is shortened to end at it (two pixels inside, so a
    photo decoded at reduced size still holds the whole box). At least 1 × 1 px.
    """
    W, H = (int(v) for v in size)
    x0 = int(np.clip(float(x), 0.0, 100.0) / 100.0 * W)
    y0 = int(np.clip(float(y), 0.0, 100.0) / 100.0 * H)
    x0, y0 = min(x0, max(W - 3, 0)), min(y0, max(H - 3, 0))
    bw = int(np.clip(float(w), 0.0, 100.0) / 100.0 * W)
    bh = int(np.clip(float(h), 0.0, 100.0) / 100.0 * H)
    bw = max(1, min(bw, W - 2 - x0))
    bh = max(1, min(bh, H - 2 - y0))
    return x0, y0, bw, bh


def analyse_photo(data: bytes, filename: str, *, px_per_mm: float | None = None, regions=None) -> PhotoAnalysis:
    """Measure one uploaded file with :func:`analyzer.measure`.

    Never raises for a bad photo: an unreadable, empty or absurd file comes back with ``error`` set to the
    library's one-line message (which names the file). ``px_per_mm`` (of the file's pixels) overrides the
    card / default scale; ``None`` or 0 means "not given".

    ``regions`` is passed on to :func:`analyzer.measure`: ``"face"`` (a full-face photo: forehead, cheeks,
    chin, temples) or ``{name: (x, y, w, h)}`` boxes in the photo's pixels. The per-region numbers come back
    in ``regions`` / ``region_outlines`` and go into the measurement's ``metrics`` as
    ``"region:<name>:<metric>"`` floats (:func:`flatten_regions`); the headline numbers are then those of the
    regions together. An impossible box is reported like an unreadable photo (``error``).
    """
    digest = sha256(data or b"")
    name = _safe_name(filename)
    if not data:
        return PhotoAnalysis(filename=name, sha256=digest,
                             error=f"{name} is empty (0 bytes) — upload the photo again")
    try:
        px = float(px_per_mm) if px_per_mm else None
    except (TypeError, ValueError):
        return PhotoAnalysis(filename=name, sha256=digest,
                             error=f"scale {px_per_mm!r} is not a number — enter pixels per millimetre, e.g. 30")
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIXES[0]) as tmp:
        path = Path(tmp) / name  # the library's messages name the file the practitioner uploaded
        try:
            path.write_bytes(data)
            m = _measure(path, px_per_mm=px, regions=regions or None)
        except ReliefError as err:
            # The practitioner knows the file by its name, not by our temporary folder.
            message = str(err).replace(str(path), name).replace(tmp + os.sep, "")
            if name not in message:
                message = f"{name}: {message}"
            return PhotoAnalysis(filename=name, sha256=digest, error=message)
        except MemoryError:
            return PhotoAnalysis(filename=name, sha256=digest,
                                 error=f"{name} needs more memory than is available — upload a smaller copy")
        except (OSError, ValueError, OverflowError) as err:  # never a traceback on the page
            return PhotoAnalysis(filename=name, sha256=digest,
                                 error=f"{name} could not be measured ({type(err).__name__}: {err}) — "
                                       "check the photo and the options")
    q = m.to_dict()["quality"]  # quality gate + every warning (scale assumption included), JSON-safe
    per_region = {str(n): {k: float(v) for k, v in vals.items()} for n, vals in (m.regions or {}).items()}
    nm = NewMeasurement(
        algorithm_version=m.algorithm_version, roughness_index=float(m.roughness_index),
        metrics={**dict(m.metrics), **flatten_regions(per_region)}, scars=list(m.scars),
        px_per_mm=float(m.px_per_mm), scale_source=m.scale_source, quality=q,
    )
    return PhotoAnalysis(
        filename=name, sha256=digest, quality_ok=bool(m.quality.ok), warnings=tuple(m.warnings),
        codes=tuple(m.quality.codes), scale_source=m.scale_source, px_per_mm=float(m.px_per_mm),
        roughness_index=float(m.roughness_index), measurement=nm, regions=per_region,
        region_outlines={str(n): np.asarray(p, float) for n, p in (m.region_outlines or {}).items()},
        region_spec=region_spec_json(regions), size=photo_size(data), camera=m.camera,
    )


@dataclass(frozen=True)
class ComparisonOutcome:
    """The comparison of one newly saved photo with its region's baseline (or why there is none)."""

    photo: PhotoRecord
    baseline: PhotoRecord | None
    comparison: ComparisonRecord | None = None
    error: str | None = None


@dataclass(frozen=True)
class SavedVisit:
    visit: VisitRecord
    comparisons: tuple[ComparisonOutcome, ...] = ()


def save_new_visit(
    store: Store,
    actor: Actor,
    patient_id: int,
    *,
    date: dt.date,
    region: str,
    uploads: Sequence[tuple[bytes, str]],
    analyses: Mapping[str, PhotoAnalysis] | None = None,
    treatment: Mapping[str, Any] | None = None,
    notes: str = "",
    px_per_mm: float | None = None,
    compare: bool = True,
    regions=None,
) -> SavedVisit:
    """Save a visit with its photos (and a treatment), all or nothing, then compare with the region's baseline.

    Parameters
    ----------
    store : storage.Store
    actor : storage.Actor
        The signed-in account (a practitioner or admin of the patient's clinic).
    patient_id : int
    date : datetime.date
    region : str
        Face region the photos show, e.g. ``"left cheek"`` (free text).
    uploads : sequence of (bytes, filename)
        The photos to keep, exactly as uploaded.
    analyses : mapping sha256 -> PhotoAnalysis, optional
        Analyses already shown to the practitioner (so nothing is measured twice); missing ones are computed.
    treatment : dict, optional
        ``needle_depth_mm``, ``area``, ``notes``, ``procedure`` of a treatment given at this visit.
    px_per_mm : float, optional
        Scale of the photos when known (file pixels); else card or default.
    compare : bool
        Compare each new photo with the region's baseline and store the result (``store.comparison_for``).
    regions : "face" or dict, optional
        For photos without an analysis: measure these regions too (see :func:`analyse_photo`). What each
        photo was measured with is kept in its capture metadata (``capture["regions"]``), so a re-measurement
        under a new algorithm version measures the same regions.

    Returns
    -------
    SavedVisit
        The stored visit and, per photo, its comparison with the baseline (or the reason there is none).

    Raises
    ------
    ReliefError
        One-line message, and nothing saved (no visit row): no photo, no region, or any photo unreadable.
    """
    region = str(region or "").strip()
    if not region:
        raise OptionError("no face region given; choose the region the photos show (e.g. left cheek)")
    if not uploads:
        raise OptionError("no photo to save; upload at least one photo of the region")
    analyses = dict(analyses or {})
    photos = []
    for data, filename in uploads:
        a = analyses.get(sha256(data or b"")) or analyse_photo(data, filename, px_per_mm=px_per_mm,
                                                                 regions=regions)
        if not a.readable:
            raise ImageError(a.error or f"{filename} could not be measured — upload another photo")
        capture = {"scale_source": a.scale_source, "px_per_mm": a.px_per_mm,
                   "quality_ok": a.quality_ok, "kept_despite_quality": not a.quality_ok}
        if a.region_spec is not None:
            capture["regions"] = a.region_spec
        if a.camera:  # (the stored file loses it with the rest of its metadata; comparisons need it)
            capture["camera"] = a.camera
        photos.append(NewPhoto(data=data, filename=a.filename, region=region, measurement=a.measurement,
                               capture=capture))
    visit = store.save_visit(actor, patient_id, date=date, notes=notes, photos=photos, treatment=treatment)
    outcomes = []
    if compare:
        baseline = store.baseline_photo(actor, patient_id, region)
        for ph in visit.photos:
            if baseline is None or baseline.id == ph.id:
                outcomes.append(ComparisonOutcome(photo=ph, baseline=None))
                continue
            try:
                rec = compare_and_store(store, actor, patient_id, baseline.id, ph.id)
                outcomes.append(ComparisonOutcome(photo=ph, baseline=baseline, comparison=rec))
            except ReliefError as err:
                outcomes.append(ComparisonOutcome(photo=ph, baseline=baseline, error=str(err)))
    return SavedVisit(visit=visit, comparisons=tuple(outcomes))


# ------------------------------------------------------------------------------------------- comparisons
def given_scale(store: Store, actor: Actor, patient_id: int, photo_id: int) -> float | None:
    """The px/mm a practitioner typed for this photo (stored with its measurement), else ``None``.

    A card is found again by the library; an assumed (default) scale is not passed on, so the follow-up's scale
    comes from the registration with the baseline.
    """
    m = store.get_measurement(actor, patient_id, photo_id, analyzer.ALGORITHM_VERSION)
    if m is not None and m.scale_source == "given" and m.px_per_mm and math.isfinite(m.px_per_mm):
        return float(m.px_per_mm)
    return None


#: Prefixes of the private temporary folders that hold a photo while the library reads it (decrypted, or an upload
#: with its metadata): removed on return, and by :func:`sweep_temporary` after a process was killed meanwhile.
TEMP_PREFIXES = ("relief-upload-", "relief-compare-")


def sweep_temporary(*, older_than_s: float = 3600.0, root: str | os.PathLike | None = None) -> list[Path]:
    """Remove this app's temporary photo folders older than ``older_than_s`` (a process killed while analysing
    left them: a decrypted photo, or an upload with its GPS position). Returns the removed folders."""
    import shutil
    import time

    removed = []
    base = Path(root or tempfile.gettempdir())
    for d in base.glob("relief-*"):
        try:
            if d.name.startswith(TEMP_PREFIXES) and d.is_dir() and not d.is_symlink() \
                    and time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                if not d.exists():
                    removed.append(d)
        except OSError:
            continue
    return removed


def run_compare(store: Store, actor: Actor, patient_id: int, baseline_id: int, followup_id: int):
    """:func:`analyzer.compare` on two stored photos of a patient.

    The photos are read with ``photo_bytes`` (decrypted and verified; the files themselves may be encrypted at
    rest) into a private temporary folder, deleted on return, as :func:`analyse_photo` does with uploads.
    """
    if baseline_id == followup_id:
        raise OptionError("the two photos are the same; pick two different visits")
    # Photos measured by region (full face, or a box drawn by hand) are compared on the baseline's regions only,
    # so hair and background never enter the change.
    captures = [store.photo(actor, patient_id, i).capture or {} for i in (baseline_id, followup_id)]
    spec = captures[0].get("regions")
    # The stored files carry no metadata: the cameras come from what was read at upload (None when unknown).
    cameras = tuple(c.get("camera") if isinstance(c.get("camera"), str) else None for c in captures)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIXES[1]) as tmp:
        path_a, path_b = Path(tmp) / "baseline", Path(tmp) / "followup"
        path_a.write_bytes(store.photo_bytes(actor, patient_id, baseline_id))
        path_b.write_bytes(store.photo_bytes(actor, patient_id, followup_id))
        return _compare(
            path_a, path_b,
            px_per_mm=given_scale(store, actor, patient_id, baseline_id),
            followup_px_per_mm=given_scale(store, actor, patient_id, followup_id),
            regions=spec or None, cameras=cameras,
        )


def comparison_values(c) -> dict[str, Any]:
    """The fields :meth:`storage.Store.comparison_for` keeps, from an :class:`analyzer.Comparison`.

    ``result`` holds the JSON of the comparison without the two full measurements (their metrics are kept by
    the photos' own measurements); it includes ``metric_changes``, ``scar_changes``, ``registration``.
    """
    d = c.to_dict()
    base, follow = d.pop("baseline"), d.pop("followup")
    d["baseline_roughness_index"] = base.get("roughness_index")
    d["followup_roughness_index"] = follow.get("roughness_index")
    d["followup_scale_source"] = follow.get("scale_source")
    d["warnings"] = list(follow.get("quality", {}).get("warnings", []))
    lo, hi = c.ci95_pct
    return dict(change_pct=float(c.change_pct), ci_low=float(lo), ci_high=float(hi), mdc_pct=float(c.mdc_pct),
                significant=bool(c.significant), result=d)


def compare_and_store(store: Store, actor: Actor, patient_id: int, baseline_id: int,
                      followup_id: int) -> ComparisonRecord:
    """The stored comparison of two photos, computed once per algorithm version."""
    return store.comparison_for(
        actor, patient_id, baseline_id, followup_id, analyzer.ALGORITHM_VERSION,
        lambda: comparison_values(run_compare(store, actor, patient_id, baseline_id, followup_id)),
    )


def latest_sentence(last, values: Mapping[str, Any] | None = None) -> str:
    """The patient's sentence about a region's latest visit (:func:`relief_app.text.visit_sentence`).

    ``last``: the last :class:`relief_app.charts.SeriesPoint` of the region (None without visits). When its change
    is not stored (a viewer or a patient link stores nothing: after an algorithm upgrade, until a practitioner
    opens the patient), ``values`` — :func:`comparison_values` of the before/after comparison the page computed
    anyway — stand in, with their differences.
    """
    if last is None:
        return visit_sentence(None, None, None, None, first_visit=True)
    change, low, high, sig, caveats = last.change, last.low, last.high, last.significant, last.caveats
    if change is None and not last.is_baseline and values is not None:
        change, low, high, sig = values["change_pct"], values["ci_low"], values["ci_high"], values["significant"]
        caveats = comparison_caveats(values.get("result"))
    return visit_sentence(change, low, high, sig, first_visit=last.is_baseline, weeks=last.weeks,
                          taken_alike=not caveats)


def before_after_ids(points: Sequence) -> tuple[int, int] | None:
    """Photo ids of the region's baseline and of its latest visit's photo that counts, from ``store.progress``
    points: the pair the chart and the patient's sentence are about (the Compare page's default, visit mode's
    and the report's before/after). ``None`` without a baseline or a later visit."""
    base = next((p.photo_id for p in points if p.is_baseline), None)
    if base is None or not points or points[-1].photo_id == base:
        return None
    return base, points[-1].photo_id


def compare_views(store: Store, actor: Actor, patient_id: int, baseline_id: int, followup_id: int) -> dict[str, Any]:
    """Everything the Compare page shows: the stored numbers plus the maps (which are not stored).

    Returns a dict with ``values`` (as :func:`comparison_values`), ``baseline`` and ``followup`` (uint8 RGB on
    the baseline's analysis grid, neutral grey where the aligned follow-up shows nothing), ``difference``
    (float32 % local change, NaN outside the overlap) and ``px_per_mm`` of that grid (10 px/mm or the photo's
    own when coarser). Also stores the comparison when it was not stored yet and the actor may store results (a
    practitioner or an admin), so the numbers are computed once; for a viewer or a link it is computed, not stored.
    """
    from .images import fill, outside_warp

    c = run_compare(store, actor, patient_id, baseline_id, followup_id)
    values = comparison_values(c)
    if actor.can(WRITE):  # a viewer or a patient link sees the comparison; only a practitioner's is stored
        store.comparison_for(actor, patient_id, baseline_id, followup_id, analyzer.ALGORITHM_VERSION, lambda: values)
    grid_px = float(c.baseline.analysis.maps.px_per_mm) if c.baseline.analysis is not None else None
    # Crop all three to the area both photos show (the warped follow-up is black outside it).
    area = c.overlap_mask if c.overlap_mask is not None and c.overlap_mask.any() else None
    if area is None:
        rows = cols = slice(None)
    else:
        ys, xs = np.nonzero(area)
        rows, cols = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    # Inside that box the warp leaves black wedges where the follow-up shows nothing: both pictures get neutral
    # grey there, so they show the same area and no black corners.
    outside = outside_warp(c.aligned_followup, c.overlap_mask)[rows, cols]
    return dict(values=values, baseline=fill(c.baseline_grid[rows, cols], outside),
                followup=fill(c.aligned_followup[rows, cols], outside),
                difference=c.difference_map[rows, cols].astype(np.float32), px_per_mm=grid_px)


# ----------------------------------------------------------------------------- results of a new algorithm
def measure_stored(store: Store, actor: Actor, patient_id: int, photo_id: int) -> NewMeasurement:
    """Measure a stored photo again as it was measured when saved (scale typed in, regions asked for)."""
    rec = store.photo(actor, patient_id, photo_id)
    capture = rec.capture or {}
    given = capture.get("px_per_mm") if capture.get("scale_source") == "given" else None
    a = analyse_photo(store.photo_bytes(actor, patient_id, photo_id), rec.filename, px_per_mm=given,
                      regions=capture.get("regions"))
    if a.measurement is None:
        raise ImageError(a.error or f"stored photo {rec.filename} cannot be measured; upload it again")
    return a.measurement


def lacking_results(points: Sequence) -> list:
    """The visits of a region (``store.progress`` points) without a result for the version they were read for: no
    measurement, or (after the baseline) no comparison with it."""
    return [p for p in points if p.roughness_index is None or (not p.is_baseline and p.change_pct is None)]


def recomputed_changes(now: Sequence, before: Sequence) -> list[dict]:
    """The visits whose change against the first visit reads differently than under an earlier algorithm version.

    ``now`` and ``before`` are ``store.progress`` points of one region for the current and an earlier version.
    A visit is listed when its change as the pages show it (whole per cent) or as this note shows it (one decimal)
    differs, when only one version could compare it, or when its verdict (significant or not) or its "photos taken
    alike" changed. A visit neither version could compare is not listed. Returns ``[{"date", "before", "now",
    "significant_before", "significant_now", "alike_before", "alike_now", "digits"}]``, ``digits`` being the
    decimals that tell the two readings apart (1, or 2 when they differ only in the page's rounding).
    """
    old = {p.visit_id: p for p in before if not p.is_baseline and p.change_pct is not None}
    out = []
    for p in now:
        q = old.get(p.visit_id)
        if p.is_baseline or q is None or p.change_pct is None:
            continue
        a, b = float(q.change_pct), float(p.change_pct)
        if not (math.isfinite(a) or math.isfinite(b)):
            continue  # (neither version could compare the photos: nothing reads differently)
        shown = [change_text(x, d) for d in (0, 1) for x in (a, b)]
        moved = shown[0] != shown[1] or shown[2] != shown[3]
        if moved or bool(q.significant) != bool(p.significant) or bool(q.caveats) != bool(p.caveats):
            out.append({"date": p.date, "before": a, "now": b, "significant_before": bool(q.significant),
                        "significant_now": bool(p.significant), "alike_before": not q.caveats,
                        "alike_now": not p.caveats, "digits": 1 if shown[2] != shown[3] or not moved else 2})
    return out


def recomputed(store: Store, actor: Actor, patient_id: int, region: str, points: Sequence, *,
               version: str | None = None) -> tuple[str | None, list[dict]]:
    """``(earlier, changes)``: the latest algorithm version before ``version`` (default the installed one) that
    stored comparisons of this region, and :func:`recomputed_changes` of ``points`` (the region's progress under
    ``version``) against its readings; ``(None, [])`` when no earlier version computed the region. The Progress page
    and the PDF report both say it, from here."""
    current = version or analyzer.ALGORITHM_VERSION
    earlier = [v for v in store.result_versions(actor, patient_id, region) if version_key(v) < version_key(current)]
    if not earlier:
        return None, []
    before = store.progress(actor, patient_id, region, algorithm_version=earlier[0])
    return earlier[0], recomputed_changes(points, before)


def complete_results(store: Store, actor: Actor, patient_id: int, points: Sequence) -> tuple[bool, list[str]]:
    """Measure and compare the visits of a region (``store.progress`` points) that have no result for the current
    algorithm version — once: the results are stored.

    Returns ``(tried, problems)``: whether anything was computed (then read ``progress`` again) and the one-line
    reasons of photos that could not be measured or aligned (those points stay without a value or interval).
    Only an account that may change patient data stores results: for a viewer or a patient link nothing is
    computed here (the missing points stay "not compared yet" until a practitioner opens the patient).
    """
    tried, problems = False, []
    if not actor.can(WRITE):
        return tried, problems
    base = points[0] if points else None
    for p in points:
        if p.roughness_index is None:
            tried = True
            try:
                store.measurement_for(actor, patient_id, p.photo_id, analyzer.ALGORITHM_VERSION,
                                      lambda p=p: measure_stored(store, actor, patient_id, p.photo_id))
            except ReliefError as err:
                problems.append(f"{p.date:%d %b %Y}: {err}")
                continue
        if not p.is_baseline and p.change_pct is None and base is not None:
            tried = True
            try:
                compare_and_store(store, actor, patient_id, base.photo_id, p.photo_id)
            except ReliefError as err:
                problems.append(f"{p.date:%d %b %Y}: {err}")
    return tried, problems
