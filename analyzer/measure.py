"""``measure``: one photo in, the relief reading out.

Pipeline: load → scale (given, calibration card, or default) → quality gate → resample to the analysis grid →
separate pigment from shading → relief bands → ISO 25178 parameters, roughness index, scars and pores, pigment
metrics. See docs/method.md.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import colour, filters
from .areal import areal_parameters
from .errors import OptionError
from .loading import as_rgb, read_image
from .quality import QualityReport, check_quality
from .registry import ALGORITHM_VERSION, BANDS, METRICS
from .relief import ANALYSIS_PX_PER_MM, ReliefMaps, relief_maps, to_analysis_grid
from .scars import Pits, find_pits

__all__ = ["DEFAULT_FIELD_WIDTH_MM", "Measurement", "Analysis", "measure", "analyse", "resolve_scale",
           "valid_mask", "parse_roi", "prepare", "Prepared"]

#: Without a given scale or a calibration card, a photo is assumed to span this width (a cheek close-up).
DEFAULT_FIELD_WIDTH_MM = 60.0
_AREAL_KEYS = ("Sa", "Sq", "Sz", "Ssk", "Sku", "Sdq", "Sdr")


@dataclass(frozen=True)
class Analysis:
    """Everything computed on the analysis grid (maps kept for the dashboard and for ``compare``)."""

    metrics: dict
    maps: ReliefMaps
    pits: Pits
    separation: colour.Separation


@dataclass(frozen=True)
class Measurement:
    """Result of :func:`measure`.

    Attributes
    ----------
    roughness_index : float
        Headline roughness, % (see ``METRICS["roughness_index"]``); lower is smoother.
    metrics : dict[str, float]
        Every metric of the registry (NaN when it could not be computed).
    scars : list of dict
        Detected scars (positions in mm on the measured area).
    quality : QualityReport
    px_per_mm : float
        Scale of the input photo (of the file's pixels when a path was given).
    scale_source : str
        ``"given"``, ``"card"`` or ``"default"``.
    warnings : list of str
        Everything the practitioner should know (scale assumptions, quality advice).
    analysis : Analysis
        Maps on the analysis grid.
    card : object or None
        The calibration card detection, when a card was found.
    """

    roughness_index: float
    metrics: dict
    scars: list
    quality: QualityReport
    px_per_mm: float
    scale_source: str
    warnings: list = field(default_factory=list)
    analysis: Analysis | None = field(default=None, repr=False)
    card: object = field(default=None, repr=False)
    algorithm_version: str = ALGORITHM_VERSION

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN → None) as printed by ``python -m analyzer measure --json``."""
        q = self.quality.to_dict()
        q["warnings"] = list(self.warnings)
        return _json_safe({
            "roughness_index": self.roughness_index,
            "metrics": self.metrics,
            "scars": self.scars,
            "quality": q,
            "px_per_mm": self.px_per_mm,
            "scale_source": self.scale_source,
            "algorithm_version": self.algorithm_version,
            "card": self.card.to_dict() if self.card is not None else None,
        })


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def parse_roi(roi, shape) -> tuple[int, int, int, int] | None:
    """Validate ``roi = (x, y, w, h)`` (pixels) against an image shape; accepts ``"X,Y,W,H"`` strings."""
    if roi is None:
        return None
    if isinstance(roi, str):
        try:
            roi = tuple(int(float(v)) for v in roi.split(","))
        except ValueError:
            raise OptionError(f"ROI {roi!r} is not four numbers — write it as X,Y,WIDTH,HEIGHT in pixels") from None
    if len(roi) != 4:
        raise OptionError("ROI needs four numbers: X,Y,WIDTH,HEIGHT in pixels")
    x, y, w, h = (int(v) for v in roi)
    H, W = shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > W or y + h > H:
        raise OptionError(f"ROI {x},{y},{w},{h} lies outside the {W}×{H} px photo — pick a region inside it")
    return x, y, w, h


def resolve_scale(rgb: np.ndarray, *, px_per_mm: float | None, downscale: float = 1.0,
                  use_card: bool = True):
    """Scale of a photo: ``(px_per_mm, source, card, warnings)``.

    Order: an explicit ``px_per_mm`` (of the original file's pixels, divided by ``downscale`` = original px per
    ``rgb`` px), a calibration card in the photo, or the documented default (the photo spans
    :data:`DEFAULT_FIELD_WIDTH_MM`).
    """
    if px_per_mm is not None:
        return _checked_scale(px_per_mm) / downscale, "given", None, []
    card = None
    if use_card:
        from .card import detect_card
        card = detect_card(rgb)
    if card is not None:
        return float(card.px_per_mm), "card", card, list(card.warnings)
    p = rgb.shape[1] / DEFAULT_FIELD_WIDTH_MM
    return p, "default", None, [
        f"no scale given and no calibration card found — assumed the photo spans {DEFAULT_FIELD_WIDTH_MM:.0f} mm "
        f"({p * downscale:.1f} px/mm); place the Relief card beside the area or pass --px-per-mm for absolute sizes"]


def _checked_scale(px_per_mm) -> float:
    if isinstance(px_per_mm, bool) or not isinstance(px_per_mm, (int, float, np.floating)) \
            or not math.isfinite(px_per_mm) or px_per_mm <= 0:
        raise OptionError(f"px_per_mm must be a positive number of pixels per millimetre, got {px_per_mm!r}")
    return float(px_per_mm)


#: Photos are reduced to this resolution (px/mm) before anything else: twice the analysis grid, enough for the
#: quality gate's clipping and glare checks, and the card search runs on at most CARD_SEARCH_PX long side.
WORKING_PX_PER_MM = 2 * ANALYSIS_PX_PER_MM
CARD_SEARCH_PX = 2400


@dataclass(frozen=True)
class Prepared:
    """A photo reduced to working resolution, with its scale.

    ``rgb`` is float32 sRGB at ``px_per_mm`` (≤ :data:`WORKING_PX_PER_MM` when the photo is finer);
    ``downscale`` = original file pixels per ``rgb`` pixel.
    """

    rgb: np.ndarray
    px_per_mm: float
    downscale: float
    source: str
    card: object
    warnings: list


def _pow2_reduction(excess: float) -> float:
    """Largest 2**-k (k >= 0) with 2**k <= excess."""
    k = int(np.floor(np.log2(excess))) if excess >= 2 else 0
    return 0.5 ** k


def prepare(image_or_path, *, px_per_mm: float | None = None, use_card: bool = True) -> Prepared:
    """Load or validate a photo, find its scale and reduce it to working resolution without full-size copies."""
    if px_per_mm is not None:
        _checked_scale(px_per_mm)
    if isinstance(image_or_path, (str, os.PathLike)):
        loaded = read_image(image_or_path)
        raw, d0 = loaded.pixels, loaded.downscale
    else:
        raw, d0 = image_or_path, 1.0
    h, w = np.shape(raw)[:2] if np.ndim(raw) >= 2 else (0, 0)
    # Power-of-two reductions (OpenCV's fast path for area averaging, ~5x faster than arbitrary factors).
    if px_per_mm is not None:
        reduce = _pow2_reduction((px_per_mm / d0) / (1.5 * ANALYSIS_PX_PER_MM))
    else:
        reduce = _pow2_reduction(max(h, w, 1) / CARD_SEARCH_PX * 2)
    rgb = as_rgb(raw, reduce=reduce)
    ds = d0 * w / rgb.shape[1] if rgb.shape[1] else d0
    p, source, card, warnings = resolve_scale(rgb, px_per_mm=px_per_mm, downscale=ds, use_card=use_card)
    if p > WORKING_PX_PER_MM * 1.05:
        small, p2 = to_analysis_grid(rgb, px_per_mm=p, target_px_per_mm=WORKING_PX_PER_MM)
        ds *= rgb.shape[1] / small.shape[1]
        rgb, p = small, p2
    return Prepared(rgb=rgb, px_per_mm=p, downscale=ds, source=source, card=card, warnings=warnings)


def valid_mask(rgb: np.ndarray, *, px_per_mm: float, card=None, glare_mm: float = 0.5) -> np.ndarray:
    """Pixels usable for relief: not inside clipped areas (glare, blown-out or black patches), not on the card.

    Isolated clipped specks (the brightest wall of a deep scar) are kept: removing them would remove exactly
    the strongest relief. Only clipped areas wider than ``glare_mm`` are excluded, with a small margin.
    """
    hi = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # faster than max(axis=-1)
    clipped = ((hi >= 0.985) | (hi <= 0.02)).astype(np.uint8)
    valid = np.ones(rgb.shape[:2], bool)
    if clipped.any():
        d = max(3, int(round(glare_mm * px_per_mm)) | 1)
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
        large = cv2.dilate(cv2.morphologyEx(clipped, cv2.MORPH_OPEN, disk), disk)
        valid &= large == 0
    if card is not None:  # the card's outline scales to any resampled copy of the searched photo
        valid &= ~card.mask(rgb.shape[:2], margin_mm=2.0)
    return valid


def _pigment_metrics(sep: colour.Separation, *, px_per_mm: float, mask: np.ndarray) -> dict:
    mel = filters.band_pass(sep.melanin, px_per_mm=px_per_mm, min_mm=0.5, max_mm=20.0, mask=mask)
    hb = filters.band_pass(sep.haemoglobin, px_per_mm=px_per_mm, min_mm=0.5, max_mm=20.0, mask=mask)
    return {
        "melanin_unevenness": float(np.std(mel[mask])) if mask.any() else float("nan"),
        "erythema_index": float(np.mean(sep.haemoglobin[mask])) if mask.any() else float("nan"),
        "erythema_unevenness": float(np.std(hb[mask])) if mask.any() else float("nan"),
    }


def analyse(rgb_grid: np.ndarray, *, px_per_mm: float, valid: np.ndarray,
            azimuth_deg: float | None = None) -> Analysis:
    """All metrics of a photo already on the analysis grid.

    Parameters
    ----------
    rgb_grid : (H, W, 3) float32
        sRGB photo at the analysis resolution.
    px_per_mm : float
        Its scale.
    valid : (H, W) bool
        Pixels to measure (skin, not clipped; for comparisons the common overlap).
    azimuth_deg : float, optional
        Light azimuth to integrate along; estimated when omitted.
    """
    sep = colour.separate(rgb_grid, px_per_mm=px_per_mm, mask=valid)
    maps = relief_maps(sep.shading, px_per_mm=px_per_mm, valid=valid, azimuth_deg=azimuth_deg)
    mask = maps.mask
    metrics: dict[str, float] = {name: float("nan") for name in METRICS}
    if mask.sum() >= 100:
        for name in BANDS:
            rms = float(np.sqrt(np.mean(maps.slope[name][mask] ** 2)))
            index = 100.0 * math.sqrt(2.0) * rms
            metrics["roughness_index" if name == "scar" else "fine_texture_index"] = index
            params = areal_parameters(maps.height[name], px_per_mm=px_per_mm, mask=mask)
            for key in _AREAL_KEYS:
                metrics[f"{name}.{key}"] = float(params[key])
        pits = find_pits(maps)
        metrics.update(pits.metrics)
        metrics.update(_pigment_metrics(sep, px_per_mm=px_per_mm, mask=mask))
    else:
        pits = Pits(scars=[], scar_labels=np.zeros(mask.shape, np.int32), pore_mask=np.zeros(mask.shape, bool),
                    metrics={})
    return Analysis(metrics=metrics, maps=maps, pits=pits, separation=sep)


def measure(image_or_path, *, px_per_mm: float | None = None, roi=None) -> Measurement:
    """Measure the skin relief in one photo.

    Parameters
    ----------
    image_or_path : str, os.PathLike or ndarray
        A photo file (JPEG, PNG, WebP, TIFF, HEIC) or an array as :func:`analyzer.load_image` returns it.
    px_per_mm : float, optional
        Pixels per millimetre of the photo as given (file pixels for a path). Without it the calibration card is
        used when present, otherwise the documented default, with a warning.
    roi : (x, y, w, h) or "X,Y,W,H", optional
        Region to measure, in pixels of the photo.

    Returns
    -------
    Measurement

    Examples
    --------
    >>> from analyzer import synth, measure
    >>> img = synth.render(synth.make_skin(seed=1, severity=0.6))
    >>> m = measure(img, px_per_mm=30.0)
    >>> m.roughness_index > 0
    True
    """
    prep = prepare(image_or_path, px_per_mm=px_per_mm)
    rgb, p, downscale, card, source = prep.rgb, prep.px_per_mm, prep.downscale, prep.card, prep.source
    warnings = list(prep.warnings)
    if roi is not None:
        H, W = (int(round(v * downscale)) for v in rgb.shape[:2])
        x, y, w, h = parse_roi(roi, (H, W))
        x, y, w, h = (int(round(v / downscale)) for v in (x, y, w, h))
        rgb = rgb[y:y + h, x:x + w]
    quality = check_quality(rgb, px_per_mm=p)
    warnings = warnings + list(quality.warnings)
    grid, gp = to_analysis_grid(rgb, px_per_mm=p)
    valid = valid_mask(grid, px_per_mm=gp, card=card if roi is None else None)
    analysis = analyse(grid, px_per_mm=gp, valid=valid)
    if not np.isfinite(analysis.metrics["roughness_index"]):
        warnings.append("too little usable skin to measure — frame more skin and avoid glare and dark shadows")
    return Measurement(
        roughness_index=analysis.metrics["roughness_index"], metrics=analysis.metrics,
        scars=analysis.pits.scars, quality=quality, px_per_mm=p * downscale, scale_source=source,
        warnings=warnings, analysis=analysis, card=card)
