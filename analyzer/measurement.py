"""``measure``: one photo in, the relief reading out.

Pipeline: load → scale (given, calibration card, or default) → quality gate → resample to the analysis grid →
separate pigment from shading → relief bands → ISO 25178 parameters, roughness index, scars and pores, pigment
metrics. See docs/method.md.
"""
from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import colour, filters
from .areal import areal_parameters
from .errors import OptionError
from .loading import DAMAGE_WARNING, MIN_SIDE_PX, LoadedImage, as_rgb, peek_size, read_image
from .quality import QualityReport, check_quality
from .registry import ALGORITHM_VERSION, BANDS, METRICS
from .relief import ANALYSIS_PX_PER_MM, ReliefMaps, measured_mask, relief_maps, to_analysis_grid
from .scars import Pits, find_pits

__all__ = ["DEFAULT_FIELD_MM", "Measurement", "Analysis", "measure", "analyse", "resolve_scale",
           "valid_mask", "skin_mask", "parse_roi", "prepare", "Prepared", "needed_share",
           "is_grayscale", "gray_copy", "GRAYSCALE_WARNING", "PIGMENT_METRICS"]

#: Without a given scale or a calibration card, a photo's long side is assumed to span this (a cheek close-up):
#: the long side, so that a portrait and a landscape photo of the same skin from the same distance get one scale.
DEFAULT_FIELD_MM = 60.0
_AREAL_KEYS = ("Sa", "Sq", "Sz", "Ssk", "Sku", "Sdq", "Sdr")
#: A band whose largest features span fewer pixels than this is not measurable on the photo (NaN).
_MIN_BAND_PX = 3.0


@dataclass(frozen=True)
class Analysis:
    """Everything computed on the analysis grid (maps kept for the dashboard and for ``compare``)."""

    metrics: dict
    maps: ReliefMaps
    pits: Pits
    separation: colour.Separation
    grayscale: bool = False


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
        ``"given"``, ``"card"``, ``"face"`` (eyes of a full-face photo), ``"default"``, or for a comparison's
        follow-up without its own scale ``"registration"`` (relative to the baseline).
    warnings : list of str
        Everything the practitioner should know (scale assumptions, quality advice).
    analysis : Analysis
        Maps on the analysis grid.
    card : object or None
        The calibration card detection, when a card was found.
    regions : dict[str, dict]
        Per-region metrics (``roughness_index``, ``fine_texture_index``, ``scar_density``, ``pore_density``,
        ``area_cm2``) when regions were measured (face regions or boxes drawn by the practitioner).
    region_outlines : dict[str, ndarray]
        Each region's polygon (N, 2) in pixels of the photo as given.
    camera : str or None
        The camera's make and model from the file's EXIF (:attr:`analyzer.loading.LoadedImage.camera`); None for
        an array or a file that does not say.
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
    regions: dict = field(default_factory=dict)
    region_outlines: dict = field(default_factory=dict, repr=False)
    algorithm_version: str = ALGORITHM_VERSION
    camera: str | None = None

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN → None) as printed by ``python -m analyzer measure --json``."""
        q = self.quality.to_dict()
        q["warnings"] = list(self.warnings)
        return json_safe({
            "roughness_index": self.roughness_index,
            "metrics": self.metrics,
            "scars": self.scars,
            "quality": q,
            "px_per_mm": self.px_per_mm,
            "scale_source": self.scale_source,
            "algorithm_version": self.algorithm_version,
            "card": self.card.to_dict() if self.card is not None else None,
            "regions": self.regions,
            "camera": self.camera,
        })


def json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def parse_roi(roi, shape) -> tuple[int, int, int, int] | None:
    """Validate ``roi = (x, y, w, h)`` (pixels) against an image shape; accepts ``"X,Y,W,H"`` strings."""
    if roi is None:
        return None
    if isinstance(roi, str):
        try:
            roi = tuple(int(float(v)) for v in roi.split(","))
        except (ValueError, OverflowError):
            raise OptionError(f"ROI {roi!r} is not four numbers — write it as X,Y,WIDTH,HEIGHT in pixels") from None
    if not hasattr(roi, "__len__") or len(roi) != 4:
        raise OptionError("ROI needs four numbers: X,Y,WIDTH,HEIGHT in pixels")
    try:
        x, y, w, h = (int(v) for v in roi)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"ROI {roi!r} is not four whole numbers — write it as X,Y,WIDTH,HEIGHT in pixels") from None
    H, W = shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > W or y + h > H:
        raise OptionError(f"ROI {x},{y},{w},{h} lies outside the {W}×{H} px photo — pick a region inside it")
    if min(w, h) < MIN_SIDE_PX:
        raise OptionError(f"ROI {x},{y},{w},{h} is {w}×{h} px; at least {MIN_SIDE_PX}×{MIN_SIDE_PX} px of skin are "
                          "needed — draw a larger region")
    return x, y, w, h


def resolve_scale(rgb: np.ndarray, *, px_per_mm: float | None, downscale: float = 1.0,
                  use_card: bool = True):
    """Scale of a photo: ``(px_per_mm, source, card, warnings)``.

    Order: an explicit ``px_per_mm`` (of the original file's pixels, divided by ``downscale`` = original px per
    ``rgb`` px), a calibration card in the photo, or the documented default (the photo's long
    side spans :data:`DEFAULT_FIELD_MM`, whichever way the camera was held).
    """
    given = _checked_scale(px_per_mm) / downscale if px_per_mm is not None else None  # px/mm of rgb
    card = None
    if use_card:  # searched even with a given scale: the card must be masked out of the skin
        from .card import CARD_LAYOUT, SEARCH_MAX_SIDE, detect_card
        search = {}
        if given is not None:
            # The scale tells how large the markers are: search a copy on which they keep CARD_MARKER_PX
            # (each found marker is then measured again at full resolution), not the whole photo.
            reduce = _pow2_reduction(CARD_LAYOUT.marker_size_mm * given / CARD_MARKER_PX)
            if reduce < 1.0:  # (never larger than detect_card's own search copy)
                search["max_side"] = min(SEARCH_MAX_SIDE, max(1, int(max(rgb.shape[:2]) * reduce)))
        card = detect_card(rgb, **search)
    if given is not None:
        return given, "given", card, []
    if card is not None:
        return float(card.px_per_mm), "card", card, list(card.warnings)
    p = max(rgb.shape[:2]) / DEFAULT_FIELD_MM
    return p, "default", None, [
        f"no scale given and no calibration card found — assumed the photo's long side spans "
        f"{DEFAULT_FIELD_MM:.0f} mm ({p * downscale:.1f} px/mm); place the Relief card beside the area or give the "
        "scale (px per mm) for absolute sizes"]


#: With a given scale the card's markers are searched on a copy reduced by a power of two as far as keeps their
#: side at least this long (px), and never larger than detect_card's own search copy (card.SEARCH_MAX_SIDE long);
#: ArUco finds 4x4 markers reliably from ~20 px, so this leaves room for a card seen at a slant or a scale that is
#: off by a factor of two.
CARD_MARKER_PX = 64.0

#: No camera resolves more than this (a microscope would): larger scales are typing errors.
MAX_PX_PER_MM = 1000.0
#: Below this a photo cannot show anything Relief measures (the smallest scar is 0.3 mm): a typing error, e.g. mm
#: per pixel given for pixels per mm.
MIN_PX_PER_MM = 1.0


def _checked_scale(px_per_mm) -> float:
    if isinstance(px_per_mm, (bool, np.bool_)) or not isinstance(px_per_mm, (int, float, np.integer, np.floating)) \
            or not math.isfinite(px_per_mm) or px_per_mm <= 0:
        raise OptionError(f"px_per_mm must be a positive number of pixels per millimetre, got {px_per_mm!r}")
    if px_per_mm < MIN_PX_PER_MM:
        raise OptionError(f"px_per_mm {px_per_mm:g} is less than {MIN_PX_PER_MM:g} pixel per millimetre, too coarse "
                          "to show any scar — check the scale (pixels per mm, e.g. 30 for a phone close-up)")
    if px_per_mm > MAX_PX_PER_MM:
        raise OptionError(f"px_per_mm {px_per_mm:g} is more than a camera resolves ({MAX_PX_PER_MM:g} px/mm) — "
                          "check the scale, e.g. 30 for a phone close-up")
    return float(px_per_mm)


#: Photos are reduced to this resolution (px/mm) before anything else: twice the analysis grid, enough for the
#: quality gate's clipping and glare checks.
WORKING_PX_PER_MM = 2 * ANALYSIS_PX_PER_MM
#: Finest the analysis needs a photo before its last resampling (px/mm): 1.5 × the grid. Photos are decoded or
#: reduced by powers of two down to no less than this (JPEGs in the DCT domain, never existing at full size).
NEEDED_PX_PER_MM = 1.5 * ANALYSIS_PX_PER_MM
#: Without a given scale the card is searched on a copy whose long side is at least this (px). Markers are then
#: at least 8 mm × 1000 px / field of view: 130 px on a 60 mm close-up. When the card shows that the analysis
#: needs finer pixels than the copy has, a finer copy is made and the card measured again on it.
CARD_SEARCH_PX = 1000


@dataclass(frozen=True)
class Prepared:
    """A photo reduced to working resolution, with its scale.

    ``rgb`` is float32 sRGB at ``px_per_mm`` (≤ :data:`WORKING_PX_PER_MM` when the photo is finer);
    ``downscale`` = original file pixels per ``rgb`` pixel. ``loaded`` is the decoded file when a path was
    given (possibly reduced while decoding), so a second preparation need not decode it again.
    """

    rgb: np.ndarray
    px_per_mm: float
    downscale: float
    source: str
    card: object
    warnings: list
    loaded: LoadedImage | None = field(default=None, repr=False)


def _pow2_reduction(excess: float) -> float:
    """Largest 2**-k (k >= 0) with 2**k <= excess."""
    k = int(np.floor(np.log2(excess))) if excess >= 2 else 0
    return 0.5 ** k


def needed_share(size: tuple[int, int], *, px_per_mm: float | None) -> float:
    """Linear share (a power of two ≤ 1) of a photo's pixels that the measurement needs.

    Parameters
    ----------
    size : (width, height)
        Of the photo, upright, in px.
    px_per_mm : float or None
        Its scale when known. Without it the share must serve both the card search (long side ≥
        :data:`CARD_SEARCH_PX`) and the default scale (the long side spans :data:`DEFAULT_FIELD_MM`).
    """
    w, h = size
    if px_per_mm is not None:
        return _pow2_reduction(px_per_mm / NEEDED_PX_PER_MM)
    by_default = _pow2_reduction(max(w, h) / DEFAULT_FIELD_MM / NEEDED_PX_PER_MM)
    by_card = _pow2_reduction(max(w, h, 1) / CARD_SEARCH_PX)
    return max(by_default, by_card)


def _reduced(raw, reduce: float, *, checked: bool) -> np.ndarray:
    """``as_rgb(raw, reduce=reduce)``; pixels already checked by :func:`read_image` are only resized."""
    if not checked:
        return as_rgb(raw, reduce=reduce)
    if reduce >= 1.0:
        return raw
    h, w = raw.shape[:2]
    return cv2.resize(raw, (max(1, round(w * reduce)), max(1, round(h * reduce))), interpolation=cv2.INTER_AREA)


def prepare(image_or_path, *, px_per_mm: float | None = None, use_card: bool = True) -> Prepared:
    """Load or validate a photo, find its scale and reduce it to working resolution without full-size copies.

    ``image_or_path`` may be a path, an array, or a :class:`~analyzer.loading.LoadedImage` already read. A JPEG
    path is decoded only at the resolution the analysis needs (libjpeg's DCT scaling by 1/2, 1/4 or 1/8).
    """
    if px_per_mm is not None:
        _checked_scale(px_per_mm)
    path = None
    if isinstance(image_or_path, (str, os.PathLike)):
        path = image_or_path
        size = peek_size(path)
        share = needed_share(size, px_per_mm=px_per_mm) if size is not None else 1.0
        image_or_path = read_image(path, reduce=share)
    loaded = image_or_path if isinstance(image_or_path, LoadedImage) else None
    if loaded is not None:
        raw, d0 = loaded.pixels, loaded.downscale
    else:
        raw, d0 = image_or_path, 1.0
    h, w = np.shape(raw)[:2] if np.ndim(raw) >= 2 else (0, 0)
    # Power-of-two reductions (OpenCV's fast path for area averaging, ~5x faster than arbitrary factors).
    full = (round(w * d0), round(h * d0))
    share = needed_share(full, px_per_mm=px_per_mm)
    rgb = _reduced(raw, _pow2_reduction(1.0 / (share * d0)), checked=loaded is not None)
    ds = d0 * w / rgb.shape[1] if rgb.shape[1] else d0
    p, source, card, warnings = resolve_scale(rgb, px_per_mm=px_per_mm, downscale=ds, use_card=use_card)
    if px_per_mm is None:
        # The card search copy served the default scale; now that the scale is known, reduce the photo by what
        # the analysis needs instead: coarser (a close-up card photo), or finer (a wide photo with the card),
        # in which case the card is measured again on the finer copy.
        wanted = needed_share(full, px_per_mm=p * ds)
        if wanted != share:
            if path is not None and wanted * d0 > 1.0:  # the decoded copy is too coarse: decode finer
                loaded = read_image(path, reduce=wanted)
                raw, d0 = loaded.pixels, loaded.downscale
                w = raw.shape[1]
            rgb = _reduced(raw, _pow2_reduction(1.0 / (wanted * d0)), checked=loaded is not None)
            ds_new = d0 * w / rgb.shape[1]
            finer = resolve_scale(rgb, px_per_mm=None, downscale=ds_new) if wanted > share else None
            if finer is not None and finer[2] is not None:  # the card, measured on more pixels
                p, source, card, warnings = finer
            else:
                p *= ds / ds_new  # px per mm of the new copy
            ds = ds_new
    if p > WORKING_PX_PER_MM * 1.05:
        small, p2 = to_analysis_grid(rgb, px_per_mm=p, target_px_per_mm=WORKING_PX_PER_MM)
        ds *= rgb.shape[1] / small.shape[1]
        rgb, p = small, p2
    if loaded is not None:
        warnings = list(warnings) + jpeg_warnings(loaded.jpeg_quality, px_per_mm=p * ds) \
            + ([DAMAGE_WARNING] if loaded.damaged else [])
    return Prepared(rgb=rgb, px_per_mm=p, downscale=ds, source=source, card=card, warnings=warnings,
                    loaded=loaded)


#: JPEGs saved below this quality (libjpeg scale, :func:`analyzer.loading.jpeg_quality`) get a warning when their
#: 8-px blocks are at least JPEG_BLOCK_MM on the skin (a resized copy). On the real photos of tests/data/real
#: (9-35 px/mm) saving at quality 80 moved the index by up to +6.7 % and at 70 by up to +10 % through the photo's
#: chroma, which JPEG keeps in 16-px blocks (algorithm 1.2); since the subtracted chroma is smoothed over the
#: photo's own pixels (1.3, colour.SOURCE_CHROMA_SIGMA_PX) by up to +3.3 % and +4.5 %. On 12 MP renders (blocks
#: of 0.12 mm) it moved by ≤ 1.4 % down to quality 60. Cameras
#: save at 85–95; messaging apps and e-mail resize and save at 70–80.
JPEG_MIN_QUALITY = 80.0
JPEG_BLOCK_MM = 0.2


def jpeg_warnings(quality: float | None, *, px_per_mm: float) -> list[str]:
    """The warning for a strongly compressed JPEG whose blocks reach the measured texture (else none).

    ``quality`` as :func:`analyzer.loading.jpeg_quality` estimates it (None: not a JPEG); ``px_per_mm`` of the
    file's own pixels.
    """
    if quality is None or quality >= JPEG_MIN_QUALITY or not px_per_mm > 0:
        return []
    block_mm = 8.0 / px_per_mm
    if block_mm < JPEG_BLOCK_MM:
        return []
    return [f"the photo was saved small and with strong JPEG compression (quality about {math.floor(quality)}; its "
            f"8-pixel blocks are {block_mm:.2f} mm on the skin, its colour blocks twice that): readings can shift by "
            "a few per cent — upload the camera's original photo, not a copy sent by a messaging app or e-mail"]


def card_gains(card):
    """The card's white-balance gains, or None (no card, or gains that could not be measured)."""
    if card is None:
        return None
    g = np.asarray(card.white_balance_gains, float)
    return tuple(g) if g.shape == (3,) and np.all(np.isfinite(g)) and np.all(g > 0) else None


def skin_mask(rgb: np.ndarray, card) -> np.ndarray | None:
    """Pixels that are skin as far as the quality gate is concerned (everything but the card), or None."""
    return None if card is None else ~card.mask(rgb.shape[:2], margin_mm=2.0)


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


#: A photo whose channels differ by at most this much (sRGB, 99th percentile over the skin) is black-and-white. A
#: gray photo saved as a colour JPEG keeps R, G and B within one or two code values of each other; skin in colour
#: differs by tens (red exceeds blue on every skin tone).
GRAY_TOLERANCE = 3.0 / 255.0
#: Pigment metrics: colour only, so undefined on a black-and-white photo.
PIGMENT_METRICS = ("melanin_unevenness", "erythema_index", "erythema_unevenness")
#: Told whenever a black-and-white photo is measured.
GRAYSCALE_WARNING = ("black-and-white photo: colour marks (redness, brown spots) cannot be told apart from relief, "
                     "so they count as relief, and the pigment metrics are not given — take the photo in colour")
#: Rec. 601 luma weights of encoded R, G, B: how JPEG, Pillow and most cameras make a black-and-white photo.
_LUMA_601 = (0.299, 0.587, 0.114)


def is_grayscale(rgb: np.ndarray, *, mask: np.ndarray | None = None) -> bool:
    """True when a photo is black-and-white: one channel repeated (R = G = B within JPEG noise).

    Parameters
    ----------
    rgb : (H, W, 3) float
        sRGB-encoded photo in [0, 1].
    mask : (H, W) bool, optional
        Pixels to judge (the skin); all pixels by default.

    Examples
    --------
    >>> is_grayscale(np.full((300, 400, 3), 0.5, np.float32))
    True
    """
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 50_000)))
    sub = rgb[::step, ::step]
    r, g, b = sub[..., 0], sub[..., 1], sub[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    if mask is not None:
        spread = spread[mask[::step, ::step]]
    return bool(np.count_nonzero(spread > GRAY_TOLERANCE) <= 0.01 * spread.size)  # 99th percentile <= tolerance


def gray_copy(rgb: np.ndarray) -> np.ndarray:
    """The photo in black and white (Rec. 601 luma of the encoded values, repeated in three channels)."""
    y = rgb[..., 0] * np.float32(_LUMA_601[0]) + rgb[..., 1] * np.float32(_LUMA_601[1]) \
        + rgb[..., 2] * np.float32(_LUMA_601[2])
    return np.repeat(np.clip(y, 0.0, 1.0).astype(np.float32)[..., None], 3, axis=2)


def _pigment_metrics(sep: colour.Separation, *, px_per_mm: float, mask: np.ndarray) -> dict:
    sig = [filters.size_to_sigma_px(d, px_per_mm) for d in (0.5, 20.0)]  # the 0.5-20 mm band of both maps
    (mel_lo, mel_hi), (hb_lo, hb_hi) = filters.gaussians([sep.melanin, sep.haemoglobin], sig, mask=mask)
    mel, hb = mel_lo - mel_hi, hb_lo - hb_hi
    return {
        "melanin_unevenness": float(np.std(mel[mask])) if mask.any() else float("nan"),
        "erythema_index": float(np.mean(sep.haemoglobin[mask])) if mask.any() else float("nan"),
        "erythema_unevenness": float(np.std(hb[mask])) if mask.any() else float("nan"),
    }


class _InThread:
    """An executor that runs each job at once in the calling thread (same interface as a thread pool)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # delivered by .result(), as a pool would
            fut.set_exception(err)
        return fut


def analyse(rgb_grid: np.ndarray, *, px_per_mm: float, valid: np.ndarray,
            azimuth_deg: float | None = None, white_balance=None, grayscale: bool | None = None,
            source_px_per_mm: float | None = None, parallel: bool = True, contrast: float = 1.0) -> Analysis:
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
    white_balance : (r, g, b), optional
        Linear gains from the calibration card (pigment metrics only; see :func:`analyzer.colour.separate`).
    grayscale : bool, optional
        Measure the photo in black and white (no pigment separation, pigment metrics NaN). By default it is
        detected (:func:`is_grayscale`); ``compare`` forces it on both photos when either is black-and-white.
    source_px_per_mm : float, optional
        Scale of the photo as it was taken (its file's pixels per mm): its chroma is trusted only at scales of a
        few of those pixels (:func:`analyzer.colour.chroma_sigma_mm`). None: the grid is the photo
        (``px_per_mm``). :func:`measure` and :func:`~analyzer.comparison.compare` pass the file's.
    parallel : bool
        Run independent stages on a second thread (the default). ``compare`` analyses its two photos side by
        side instead, each in one thread: more threads than cores only add switching.
    contrast : float
        The photo's log-contrast relative to the photo it is compared with (:func:`analyzer.card.contrast_transfer`;
        1 = alike): the shading is divided by it before the relief is read, so a phone's tone curve or a veil of
        stray light that the card measured does not count as relief. Pigment metrics are not changed.
    """
    try:
        k = float(contrast) if not isinstance(contrast, (bool, np.bool_, str, bytes)) else math.nan
    except (TypeError, ValueError, OverflowError):
        k = math.nan
    if not 0.1 <= k <= 10.0:  # (NaN fails too) a tone curve or veil moves contrast by tens of %, not ×10
        raise OptionError(f"contrast={contrast!r} is impossible; pass a positive factor between 0.1 and 10 "
                          "(1 = no correction)")
    contrast = k
    if grayscale is None:
        grayscale = is_grayscale(rgb_grid, mask=valid if valid.any() else None)
    if grayscale:  # exactly one channel: the separation then leaves the achromatic shading untouched
        rgb_grid = gray_copy(rgb_grid)
    metrics: dict[str, float] = {name: float("nan") for name in METRICS}
    mask = measured_mask(valid, px_per_mm=px_per_mm)  # = maps.mask, known before the maps
    enough = mask.sum() >= 100
    # Independent stages run on a second thread while the main one follows the chain separation → relief maps
    # → pits: the pigment-pattern weight (during the leak estimate), the pigment metrics (during the relief
    # maps) and the areal parameters (during the pits). OpenCV and numpy release the GIL for their array
    # work, so this uses both cores; every value is the one computed in sequence.
    with (ThreadPoolExecutor(max_workers=1) if parallel else _InThread()) as pool:
        sep = colour.separate(rgb_grid, px_per_mm=px_per_mm, mask=valid, white_balance=white_balance,
                              chroma_sigma_mm=colour.chroma_sigma_mm(
                                  px_per_mm if source_px_per_mm is None else source_px_per_mm),
                              executor=pool if parallel else None)
        # Colour marks cannot be told apart from relief in black and white: the pigment metrics stay NaN then.
        pigment_job = pool.submit(_pigment_metrics, sep, px_per_mm=px_per_mm, mask=mask) \
            if enough and not grayscale else None
        shading = sep.shading if contrast == 1.0 else sep.shading * np.float32(1.0 / contrast)
        maps = relief_maps(shading, px_per_mm=px_per_mm, valid=valid, azimuth_deg=azimuth_deg)
        if enough:
            bands = [name for name, band in BANDS.items() if band.max_mm * px_per_mm >= _MIN_BAND_PX]  # coarser: NaN
            areal_jobs = {name: pool.submit(areal_parameters, maps.height[name], px_per_mm=px_per_mm, mask=mask)
                          for name in bands}
            pits = find_pits(maps)
            for name in bands:
                rms = float(np.sqrt(np.mean(maps.slope[name][mask] ** 2)))
                metrics["roughness_index" if name == "scar" else "fine_texture_index"] = 100.0 * math.sqrt(2.0) * rms
            for name in bands:
                params = areal_jobs[name].result()
                for key in _AREAL_KEYS:
                    metrics[f"{name}.{key}"] = float(params[key])
            metrics.update(pits.metrics)
            metrics.update(pigment_job.result() if pigment_job is not None else {})
    if not enough:
        pits = Pits(scars=[], scar_labels=np.zeros(mask.shape, np.int32), pore_mask=np.zeros(mask.shape, bool),
                    metrics={})
    return Analysis(metrics=metrics, maps=maps, pits=pits, separation=sep, grayscale=bool(grayscale))


def measure(image_or_path, *, px_per_mm: float | None = None, roi=None, regions=None) -> Measurement:
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
    regions : "face" or dict[str, (x, y, w, h)], optional
        Measure named regions as well: ``"face"`` finds the face (full-face photo) and its standard regions
        (cheeks, forehead, chin, temples; :mod:`analyzer.regions`); a dict gives boxes in photo pixels drawn by
        the practitioner. The headline metrics are then computed over the union of the regions (skin only).

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
    not_skin = None if card is None else ~skin_mask(rgb, card)  # the card, never skin
    if roi is not None:
        H, W = (int(round(v * downscale)) for v in rgb.shape[:2])
        x, y, w, h = parse_roi(roi, (H, W))
        x, y, w, h = (int(round(v / downscale)) for v in (x, y, w, h))
        rgb = rgb[y:y + h, x:x + w]
        if not_skin is not None:  # (a region that takes in the card measured its print as skin)
            not_skin = not_skin[y:y + h, x:x + w]
    named, face = named_regions(regions, rgb, downscale, warnings) if regions is not None else ({}, None)
    if face is not None and source == "default":
        p, source, warnings = _face_scale(face, p, downscale, warnings)
    # The quality gate is independent of the analysis: it runs on the other core meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        quality_job = pool.submit(check_quality, rgb, px_per_mm=p, mask=None if not_skin is None else ~not_skin)
        grid, gp = to_analysis_grid(rgb, px_per_mm=p)
        valid = valid_mask(grid, px_per_mm=gp, card=card if roi is None else None)
        if roi is not None and not_skin is not None and not_skin.any():
            valid &= cv2.resize(not_skin.astype(np.float32), grid.shape[1::-1], interpolation=cv2.INTER_AREA) == 0
        region_masks = {}
        if named:
            for name, reg in named.items():
                region_masks[name] = reg.scaled(grid.shape[1] / rgb.shape[1]).mask(grid.shape[:2]) & valid
            valid = valid & np.logical_or.reduce(list(region_masks.values()))
        analysis = analyse(grid, px_per_mm=gp, valid=valid, white_balance=card_gains(card),
                           source_px_per_mm=p * downscale)
        per_region = {name: region_metrics(analysis, m) for name, m in region_masks.items()}
        quality = quality_job.result()
    if "no_texture" in quality.codes:
        # A blank, black or burnt-out photo has no relief to measure: its numbers (≈ 0 with a few "scars" of
        # noise) would read as perfectly smooth skin, and as a region's baseline every later visit would fail
        # to align. Nothing is measured; the quality warning says what to do.
        analysis = _unmeasured(analysis)
        per_region = {name: {k: float("nan") for k in values} for name, values in per_region.items()}
    warnings = warnings + list(quality.warnings)
    if analysis.grayscale:
        warnings.append(GRAYSCALE_WARNING)
    if not np.isfinite(analysis.metrics["roughness_index"]) and "no_texture" not in quality.codes:
        warnings.append("too little usable skin to measure — frame more skin and avoid glare and dark shadows")
    return Measurement(
        roughness_index=analysis.metrics["roughness_index"], metrics=analysis.metrics,
        scars=analysis.pits.scars, quality=quality, px_per_mm=p * downscale, scale_source=source,
        warnings=warnings, analysis=analysis, card=card, regions=per_region,
        region_outlines={n: r.polygon * downscale for n, r in named.items()},
        camera=prep.loaded.camera if prep.loaded is not None else None)


def _unmeasured(analysis: Analysis) -> Analysis:
    """``analysis`` with every metric NaN and no scars or pores (a photo without skin texture)."""
    shape = analysis.pits.scar_labels.shape
    return dataclasses.replace(
        analysis, metrics={name: float("nan") for name in analysis.metrics},
        pits=Pits(scars=[], scar_labels=np.zeros(shape, np.int32), pore_mask=np.zeros(shape, bool), metrics={}))


#: Without a card, a full-face photo is scaled by the average adult interpupillary distance (Dodgson 2004).
INTERPUPILLARY_MM = 63.0


def named_regions(regions, rgb: np.ndarray, downscale: float, warnings: list):
    """``(regions, face)``: regions in working-image pixels — the face's standard regions, or boxes given in
    photo pixels."""
    from .regions import face_regions, find_face, region_from_box

    if isinstance(regions, str):
        if regions != "face":
            raise OptionError(f"regions must be 'face' or a dict of name: (x, y, w, h), got {regions!r}")
        face = find_face(rgb)
        # A Haar box without an eye pair is too often a false face on a close-up of skin: insist on the eyes.
        if face is not None and face.eyes is None:
            face = None
        found = face_regions(rgb, face=face) if face is not None else None
        if not found:
            warnings.append("no face found — photograph the whole face from the front, or draw the region by hand")
            return {}, None
        return found, face
    if not isinstance(regions, dict):
        raise OptionError(f"regions must be 'face' or a dict of name: (x, y, w, h), got a {type(regions).__name__}")
    out = {}
    H, W = (int(round(v * downscale)) for v in rgb.shape[:2])
    for name, box in regions.items():
        x, y, w, h = parse_roi(box, (H, W))
        out[str(name)] = region_from_box(str(name), x / downscale, y / downscale, w / downscale, h / downscale)
    return out, None


def _face_scale(face, p: float, downscale: float, warnings: list):
    """Replace the close-up default scale by one from the eyes of the detected face (when they were found)."""
    if face.eyes is None:
        return p, "default", warnings
    eyes = np.asarray(face.eyes, float)
    ipd_px = float(np.hypot(*(eyes[1] - eyes[0])))
    if ipd_px <= 0:
        return p, "default", warnings
    p_face = ipd_px / INTERPUPILLARY_MM
    warnings = [w for w in warnings if not w.startswith("no scale given")] + [
        f"no calibration card — scale taken from the eyes (average adult interpupillary distance "
        f"{INTERPUPILLARY_MM:.0f} mm, {p_face * downscale:.1f} px/mm); use the card for exact sizes"]
    return p_face, "face", warnings


def region_metrics(analysis: Analysis, region_mask: np.ndarray) -> dict:
    """Roughness, fine texture, scar and pore density inside one region of the analysis grid."""
    maps, pits = analysis.maps, analysis.pits
    m = region_mask & maps.mask
    p = maps.px_per_mm
    area_cm2 = float(m.sum()) / p**2 / 100.0
    if m.sum() < 100:
        return {"roughness_index": float("nan"), "fine_texture_index": float("nan"), "scar_density": float("nan"),
                "pore_density": float("nan"), "area_cm2": area_cm2}
    rms = {name: float(np.sqrt(np.mean(maps.slope[name][m] ** 2))) for name in BANDS}
    in_region = [s for s in pits.scars if m[min(int(s["y_mm"] * p), m.shape[0] - 1),
                                           min(int(s["x_mm"] * p), m.shape[1] - 1)]]
    n_pores = cv2.connectedComponents((pits.pore_mask & m).astype(np.uint8))[0] - 1
    return {"roughness_index": 100.0 * math.sqrt(2.0) * rms["scar"],
            "fine_texture_index": 100.0 * math.sqrt(2.0) * rms["fine"],
            "scar_density": len(in_region) / area_cm2, "pore_density": n_pores / area_cm2, "area_cm2": area_cm2}
