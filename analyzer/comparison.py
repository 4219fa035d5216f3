"""``compare``: is the follow-up smoother than the baseline, by how much, and beyond noise?

Steps: both photos go to the analysis grid; the follow-up is registered to the baseline (features + RANSAC
similarity, ECC refinement) and warped into its frame; both are measured on the common overlap only, with the
baseline's light azimuth; the change of the roughness index gets a 95 % interval from a paired spatial block
bootstrap (5 mm tiles) combined with the recapture repeatability, calibrated on recaptures rendered apart from
the validation ones (``python -m analyzer.validate``); ``significant`` means the change exceeds the minimal
detectable change (MDC95) and its interval excludes zero.

References
----------
.. [1] B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall (1993) — block bootstrap.
.. [2] H. C. W. de Vet et al., "Measurement in Medicine", Cambridge University Press (2011) — SEM and MDC.
"""
from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import filters
from .card import LUMA, contrast_transfer
from .colour import linearise
from .consistency import assess
from .errors import OptionError, ReliefError
from .measurement import (GRAYSCALE_WARNING, Analysis, Measurement, json_safe, named_regions, analyse, card_gains,
                          gray_copy, is_grayscale, needed_share, prepare, skin_mask, valid_mask)
from .quality import check_quality
from .registration import Registration, register, warp_image, warp_overlap
from .registry import ALGORITHM_VERSION, METRICS
from .relief import measured_mask, to_analysis_grid

__all__ = ["Comparison", "compare", "RegistrationError", "REPEATABILITY_SD_PCT", "TILE_MM", "repeatability",
           "calibrate_repeatability"]

#: SD (percentage points) of the roughness-index change between two recaptures of unchanged skin. Calibrated on
#: recaptures that are *not* the validation renders (``analyzer.validate.calibration_pairs``: other skins and
#: severities, a second noise model — wider exposure, white-balance, JPEG, noise and blur drift, ambient light,
#: vignetting and faint glare, and a phone's processing: tone curve, sharpening, chroma noise, a second JPEG):
#: RMS change 3.53 % over 30 aligned pairs (algorithm 1.3); the constant is its upper 95 % confidence limit,
#: 3.53 · sqrt(30 / χ²₀.₀₅,₃₀) = 4.49 %, rounded up to 4.5 %, so a finite calibration sample cannot make the test
#: too eager. (It was 3.1 %, calibrated on the validation renders themselves, then 4.9 % with algorithm 1.2,
#: whose separation passed JPEG's chroma noise into the shading: 3.79 %, limit 4.83 %.) The false-significance rate is
#: measured on unchanged pairs held apart from the calibration (``analyzer.validate.recapture_spread`` and
#: ``held_out_spread``). Re-measure when the algorithm changes, and on real recaptures with
#: :func:`calibrate_repeatability` (``python -m analyzer.validate --calibrate pairs.csv``).
REPEATABILITY_SD_PCT = 4.5
#: Tile size of the spatial block bootstrap (about one scar's neighbourhood).
TILE_MM = 5.0
_BOOTSTRAP = 1000
#: A single scar's depth proxy repeats within about this much between recaptures of unchanged skin (synthetic
#: ground truth); smaller changes are reported as "unchanged".
SCAR_DEPTH_CHANGE_PCT = 25.0


class RegistrationError(ReliefError):
    """The two photos could not be aligned (different areas, or too little texture)."""


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    baseline, followup : Measurement
        Both measured on the common overlap (follow-up warped into the baseline's frame). With the card in both
        photos the follow-up's relief readings are on the baseline's contrast
        (``consistency["contrast_correction_pct"]``), so they can differ from the photo measured on its own.
    change_pct : float
        Change of the roughness index, % of baseline; negative = smoother.
    ci95_pct : (float, float)
        95 % interval of ``change_pct``.
    mdc_pct : float
        Minimal detectable change (95 %): smaller changes are within measurement noise.
    significant : bool
        ``abs(change_pct) > mdc_pct`` and the interval excludes 0.
    metric_changes : dict
        % change of every metric (NaN where the baseline is 0).
    registration : Registration
    difference_map : (H, W) float32
        Local roughness change (%) on the baseline's analysis grid: negative = smoother there. NaN outside
        the overlap.
    scar_changes : list of dict
        Baseline scars matched to follow-up scars: depth change or ``"vanished"``.
    aligned_followup : (H, W, 3) float32
        Follow-up on the baseline's analysis grid (for before/after views); ``baseline_grid`` likewise.
    region_changes : dict[str, dict]
        With ``regions``: per region ``change_pct``, ``ci95_pct``, ``mdc_pct``, ``significant``.
    """

    baseline: Measurement
    followup: Measurement
    change_pct: float
    ci95_pct: tuple
    mdc_pct: float
    significant: bool
    metric_changes: dict
    registration: Registration
    difference_map: np.ndarray = field(repr=False)
    scar_changes: list = field(default_factory=list)
    baseline_grid: np.ndarray | None = field(default=None, repr=False)
    aligned_followup: np.ndarray | None = field(default=None, repr=False)
    overlap_mask: np.ndarray | None = field(default=None, repr=False)
    consistency: dict = field(default_factory=dict)
    region_changes: dict = field(default_factory=dict)
    algorithm_version: str = ALGORITHM_VERSION

    @property
    def direction(self) -> str:
        """Plain-language verdict: "smoother", "rougher", "no measurable change" or "could not be measured"."""
        if not math.isfinite(self.change_pct):
            return "could not be measured"
        if not self.significant:
            return "no measurable change"
        return "smoother" if self.change_pct < 0 else "rougher"

    def to_dict(self) -> dict:
        """JSON-safe dict as printed by ``python -m analyzer compare --json``."""
        return json_safe({
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
            "change_pct": self.change_pct,
            "ci95_pct": list(self.ci95_pct),
            "mdc_pct": self.mdc_pct,
            "significant": self.significant,
            "direction": self.direction,
            "metric_changes": self.metric_changes,
            "registration": self.registration.to_dict(),
            "scar_changes": self.scar_changes,
            "consistency": self.consistency,
            "region_changes": self.region_changes,
            "algorithm_version": self.algorithm_version,
        })


def repeatability(changes_pct, *, confidence: float = 0.95) -> dict:
    """Repeatability SD of the change between recaptures of unchanged skin, and its upper confidence limit.

    Parameters
    ----------
    changes_pct : sequence of float
        ``change_pct`` of :func:`compare` on pairs of photos of *unchanged* skin (NaN entries are dropped).
    confidence : float
        One-sided confidence of the upper limit.

    Returns
    -------
    dict
        ``n``, ``sd_pct`` (sample SD about zero change — unchanged skin has a true change of 0, so a bias counts
        as error), ``upper_pct`` = ``sd_pct · sqrt(n / χ²_{1-confidence, n})`` (the value to use as
        :data:`REPEATABILITY_SD_PCT`: a finite calibration sample cannot make the test too eager),
        ``within_3_pct`` (share of pairs within ±3 %) and ``max_abs_pct``.

    Examples
    --------
    >>> r = repeatability([1.0, -1.0, 2.0, -2.0])
    >>> round(r["sd_pct"], 3), r["n"]
    (1.581, 4)
    """
    from scipy.stats import chi2

    ch = np.asarray([c for c in changes_pct if np.isfinite(c)], dtype=np.float64)
    n = int(ch.size)
    if n < 2:
        raise ReliefError(f"{n} usable recapture pair(s); give at least 2 pairs of photos of unchanged skin.")
    sd = float(np.sqrt(np.mean(ch * ch)))
    upper = sd * math.sqrt(n / float(chi2.ppf(1.0 - confidence, n)))
    return {"n": n, "sd_pct": sd, "upper_pct": upper, "within_3_pct": float(np.mean(np.abs(ch) <= 3.0)),
            "max_abs_pct": float(np.max(np.abs(ch)))}


def calibrate_repeatability(pairs, *, confidence: float = 0.95) -> dict:
    """Calibrate :data:`REPEATABILITY_SD_PCT` on recaptures of unchanged skin.

    Parameters
    ----------
    pairs : iterable of (baseline, followup) or (baseline, followup, px_per_mm)
        Photos (paths or arrays) of the same, unchanged skin taken at different visits with the usual protocol;
        ``px_per_mm`` is the baseline's scale when it has no card.
    confidence : float
        See :func:`repeatability`.

    Returns
    -------
    dict
        :func:`repeatability`'s figures plus ``changes_pct``, ``significant`` (pairs called significant with
        the current constant — should be about 5 % or less) and ``unaligned`` (pairs that could not be registered,
        left out: the practitioner is asked to retake those).

    Notes
    -----
    On real photos: list the pairs (e.g. two photos of the same cheek taken minutes or days apart, before any
    treatment) and run ``python -m analyzer.validate --calibrate pairs.csv``. Set the constant to the printed
    upper limit only if the pairs were not also used to check it.
    """
    changes, sig, unaligned = [], 0, 0
    for pair in pairs:
        base, follow, *rest = pair
        try:
            c = compare(base, follow, px_per_mm=rest[0] if rest else None)
        except RegistrationError:  # the practitioner would be asked to retake it: no change to count
            unaligned += 1
            continue
        changes.append(c.change_pct)
        sig += int(c.significant)
    return {**repeatability(changes, confidence=confidence), "changes_pct": changes, "significant": sig,
            "unaligned": unaligned}


def _tile_sums(values: np.ndarray, mask: np.ndarray, tile_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile sums of ``values`` and pixel counts over ``mask``."""
    h, w = mask.shape
    th, tw = max(1, h // tile_px), max(1, w // tile_px)
    hh, ww = th * tile_px, tw * tile_px
    v = np.where(mask, values, 0.0)[:hh, :ww].reshape(th, tile_px, tw, tile_px).sum(axis=(1, 3)).ravel()
    n = mask[:hh, :ww].reshape(th, tile_px, tw, tile_px).sum(axis=(1, 3)).ravel()
    return v, n


def _kept_tiles(mask: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Tile size (px) and which tiles of :func:`change_interval`'s grid hold enough measured pixels."""
    tile = max(4, int(round(TILE_MM * px_per_mm)))
    h, w = mask.shape
    th, tw = max(1, h // tile), max(1, w // tile)
    n = mask[:th * tile, :tw * tile].reshape(th, tile, tw, tile).sum(axis=(1, 3)).ravel()
    return n > 0.25 * tile * tile


def bootstrap_weights(n_tiles: int, *, seed: int = 0) -> np.ndarray:
    """Resampling counts (``_BOOTSTRAP`` × ``n_tiles``) of the spatial bootstrap: drawn once per comparison
    (depending only on the number of tiles), so they can be drawn before the slopes are known."""
    # Each resample draws n_tiles tiles with replacement; counting the draws per tile (one bincount over all
    # resamples) gives the multinomial counts at a fifth of the time of rng.multinomial.
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_tiles, size=(_BOOTSTRAP, n_tiles), dtype=np.int64)
    draws += (np.arange(_BOOTSTRAP, dtype=np.int64) * n_tiles)[:, None]
    return np.bincount(draws.ravel(), minlength=_BOOTSTRAP * n_tiles).reshape(_BOOTSTRAP, n_tiles).astype(np.float64)


def change_interval(base_sq: np.ndarray, follow_sq: np.ndarray, mask: np.ndarray, *, px_per_mm: float,
                    seed: int = 0, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Change of an RMS quantity (%) and its spatial-bootstrap standard error (percentage points).

    Parameters
    ----------
    base_sq, follow_sq : (H, W) float
        Squared values whose mean's square root is the metric (e.g. squared slopes).
    mask : (H, W) bool
        Pixels measured in both.
    weights : ndarray, optional
        ``bootstrap_weights(n, seed=seed)`` for this mask's number of kept tiles, drawn beforehand (drawn here
        otherwise, or when the number does not match).
    """
    tile = max(4, int(round(TILE_MM * px_per_mm)))
    b, n = _tile_sums(base_sq, mask, tile)
    f, _ = _tile_sums(follow_sq, mask, tile)
    keep = n > 0.25 * tile * tile
    b, f = b[keep], f[keep]
    if b.size < 2 or b.sum() <= 0:
        return float("nan"), float("nan")
    change = 100.0 * (math.sqrt(f.sum() / b.sum()) - 1.0)
    w = weights if weights is not None and weights.shape == (_BOOTSTRAP, b.size) \
        else bootstrap_weights(b.size, seed=seed)
    # einsum, not `@`: a (rounds × tiles) matrix-vector product goes through threaded BLAS, whose worker threads
    # then spin on the second core for tens of ms.
    ratios = np.sqrt(np.einsum("ij,j->i", w, f) / np.maximum(np.einsum("ij,j->i", w, b), 1e-30))
    return change, float(np.std(100.0 * (ratios - 1.0)))


def _local_rms(slope: np.ndarray, mask: np.ndarray, px_per_mm: float) -> np.ndarray:
    sig = filters.size_to_sigma_px(3.0, px_per_mm)
    return np.sqrt(np.maximum(filters.gaussian(slope * slope, sig, mask=mask), 0.0))


def _match_scars(base: list, follow: list) -> list:
    """Pair baseline scars with follow-up scars by position (both on the baseline's grid, mm)."""
    out, used = [], set()
    for s in base:
        best, best_d = None, None
        for t in follow:
            if t["id"] in used:
                continue
            d = math.hypot(s["x_mm"] - t["x_mm"], s["y_mm"] - t["y_mm"])
            if d <= max(1.0, 0.6 * s["diameter_mm"]) and (best_d is None or d < best_d):
                best, best_d = t, d
        entry = {"baseline_id": s["id"], "kind": s["kind"], "x_mm": s["x_mm"], "y_mm": s["y_mm"],
                 "baseline_depth_um": s["depth_um"], "baseline_diameter_mm": s["diameter_mm"]}
        if best is None:  # below the detection threshold now, not "0 deep": no depth, no % change is claimed
            entry.update(followup_id=None, followup_depth_um=float("nan"), depth_change_pct=float("nan"),
                         status="vanished")
        else:
            used.add(best["id"])
            change = 100.0 * (best["depth_um"] / s["depth_um"] - 1.0) if s["depth_um"] > 0 else float("nan")
            status = ("shallower" if change < -SCAR_DEPTH_CHANGE_PCT
                      else "deeper" if change > SCAR_DEPTH_CHANGE_PCT else "unchanged")
            entry.update(followup_id=best["id"], followup_depth_um=best["depth_um"], depth_change_pct=change,
                         status=status)
        out.append(entry)
    for t in follow:
        if t["id"] not in used:
            out.append({"baseline_id": None, "kind": t["kind"], "x_mm": t["x_mm"], "y_mm": t["y_mm"],
                        "baseline_depth_um": 0.0, "followup_id": t["id"], "followup_depth_um": t["depth_um"],
                        "depth_change_pct": float("nan"), "status": "new"})
    return out


def _measurement(analysis: Analysis, *, quality, px_per_mm, source, warnings, card, camera) -> Measurement:
    return Measurement(roughness_index=analysis.metrics["roughness_index"], metrics=analysis.metrics,
                       scars=analysis.pits.scars, quality=quality, px_per_mm=px_per_mm, scale_source=source,
                       warnings=warnings, analysis=analysis, card=card, camera=camera)


def compare(baseline, followup, *, px_per_mm: float | None = None,
            followup_px_per_mm: float | None = None, regions=None, cameras=None,
            correct_contrast: bool = True) -> Comparison:
    """Compare a follow-up photo of a skin area with its baseline.

    Parameters
    ----------
    baseline, followup : str, os.PathLike or ndarray
        Photos (paths or arrays as :func:`analyzer.load_image` returns them).
    px_per_mm : float, optional
        Scale of the baseline photo (file pixels). Card or default otherwise. The follow-up's scale comes
        from its own card, or from the registration (relative to the baseline).
    followup_px_per_mm : float, optional
        Scale of the follow-up when known independently.
    regions : "face" or dict[str, (x, y, w, h)], optional
        Compare only these regions of the baseline (the follow-up is aligned to it): ``"face"`` finds the
        face's standard regions on the baseline, a dict gives boxes in the baseline's pixels. The headline
        change is then over the regions together (skin only, no hair or background) and
        ``region_changes`` holds each region's change.
    cameras : (str or None, str or None), optional
        The cameras the two photos were taken with, for files that no longer say it (their metadata removed on
        upload); by default each file's EXIF make and model. Two different cameras make the photos "not taken
        alike" (``consistency["differences"]``).
    correct_contrast : bool, optional
        With the calibration card in both photos, put the follow-up's relief on the baseline's contrast as read
        on the card's grey steps (:func:`analyzer.card.contrast_transfer`: a phone's tone curve, a veil of stray
        light); ``consistency["contrast_correction_pct"]`` says by how much. False: read as taken (validation).

    Returns
    -------
    Comparison

    Raises
    ------
    RegistrationError
        When the photos cannot be aligned (different areas, or too little skin texture).
    """
    if cameras is not None and not (isinstance(cameras, (tuple, list)) and len(cameras) == 2
                                    and all(c is None or isinstance(c, str) for c in cameras)):
        raise OptionError("cameras must be the two photos' camera names (str or None), e.g. "
                          "(\"Apple iPhone 13\", None)")
    if not isinstance(correct_contrast, (bool, np.bool_)):
        raise OptionError(f"correct_contrast must be True or False, not {correct_contrast!r}")
    # The quality gates and the bootstrap's resampling run on a spare thread (q_pool); it is shut down however the
    # comparison ends (a photo that cannot be aligned, or read).
    q_pool = ThreadPoolExecutor(max_workers=1)
    try:
        return _compare(baseline, followup, px_per_mm=px_per_mm, followup_px_per_mm=followup_px_per_mm,
                        regions=regions, cameras=cameras, q_pool=q_pool, correct_contrast=bool(correct_contrast))
    finally:
        q_pool.shutdown(wait=False, cancel_futures=True)


def _compare(baseline, followup, *, px_per_mm, followup_px_per_mm, regions, cameras, q_pool,
             correct_contrast) -> Comparison:
    # The two photos are independent until registration: prepared side by side (OpenCV and numpy release the
    # GIL for the heavy parts, so this uses both cores).
    with ThreadPoolExecutor(max_workers=2) as pool:
        fut_f = pool.submit(prepare, followup, px_per_mm=followup_px_per_mm)
        prep_b = prepare(baseline, px_per_mm=px_per_mm)
        prep_f = fut_f.result()
    if prep_f.source == "default" and prep_b.source != "default":
        # No scale of its own: assume the follow-up frames the same area as the baseline (prepared the same
        # way, so both are resampled alike); the registration then measures the true relative scale.
        guess = prep_b.px_per_mm * prep_b.downscale * _side(prep_f) / _side(prep_b)
        card = prep_f.card
        again = followup
        # Reuse the follow-up's decode only when it was decoded as the baseline was (same libjpeg reduction):
        # DCT scaling and area averaging give slightly different fine texture, and on a small field (~200 px
        # analysis grid) that difference alone cost the feature matching a quarter of its inliers.
        same_path = prep_b.loaded is not None and prep_f.loaded is not None \
            and prep_b.loaded.downscale == prep_f.loaded.downscale
        if same_path \
                and needed_share(prep_f.loaded.original_size, px_per_mm=guess) <= 1.0 / prep_f.loaded.downscale + 1e-9:
            again = prep_f.loaded  # decoded finely enough already: no second decode
        prep_f = dataclasses.replace(prepare(again, px_per_mm=guess, use_card=False), source="registration",
                                     card=card)
    rgb_b, pb, ds_b, src_b, card_b, warn_b = (prep_b.rgb, prep_b.px_per_mm, prep_b.downscale, prep_b.source,
                                              prep_b.card, prep_b.warnings)
    rgb_f, pf, ds_f, src_f, card_f, warn_f = (prep_f.rgb, prep_f.px_per_mm, prep_f.downscale, prep_f.source,
                                              prep_f.card, prep_f.warnings)
    # The quality gates feed neither the alignment nor the analysis: a spare thread runs them meanwhile, filling
    # the registration's single-threaded stretches (ECC). (pf as prepared: the registration's scale below
    # replaces it for the report and the chroma smoothing.)
    fut_q = q_pool.submit(lambda pb=pb, pf=pf: (check_quality(rgb_b, px_per_mm=pb, mask=skin_mask(rgb_b, card_b)),
                                                check_quality(rgb_f, px_per_mm=pf, mask=skin_mask(rgb_f, card_f))))

    def to_grid(rgb, p, card):
        grid, gp = to_analysis_grid(rgb, px_per_mm=p)
        return grid, gp, valid_mask(grid, px_per_mm=gp, card=card)

    with ThreadPoolExecutor(max_workers=1) as pool:  # both photos at once
        fut_grid = pool.submit(to_grid, rgb_f, pf, card_f)
        grid_b, gpb, valid_b = to_grid(rgb_b, pb, card_b)
        grid_f, gpf, valid_f = fut_grid.result()

    reg = register(grid_b, grid_f, px_per_mm=gpb, fixed_mask=_not_card(card_b, grid_b),
                   moving_mask=_not_card(card_f, grid_f))
    if not reg.ok:
        raise RegistrationError(reg.message or "could not align the follow-up with the baseline — "
                                "photograph the same area, with the same framing")
    # Resampling smooths: warping the follow-up on the analysis grid itself would make it read smoother than
    # the untouched baseline. So the follow-up is warped at working resolution (about twice the grid's) with
    # cubic interpolation into the baseline's working frame, and both then reach the grid the same way. The
    # overlap depends on the matrix alone: it is known before the pixels are warped.
    m_work = _grid_to_work(reg.matrix, grid_b.shape, rgb_b.shape, grid_f.shape, rgb_f.shape)
    inside_work = warp_overlap(rgb_b.shape[:2], rgb_f.shape[:2], m_work, order="cubic")
    inside = cv2.resize(inside_work.astype(np.uint8), grid_b.shape[1::-1], interpolation=cv2.INTER_AREA) > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    vf = warp_image(grid_b.shape[:2], valid_f.astype(np.float32), reg.matrix)
    common = valid_b & inside & (vf > 0.99)
    region_masks = {}
    if regions is not None:
        named, _face = named_regions(regions, rgb_b, ds_b, warn_b)
        region_masks = {name: r.scaled(grid_b.shape[1] / rgb_b.shape[1]).mask(grid_b.shape[:2])
                        for name, r in named.items()}
        if region_masks:
            common &= np.logical_or.reduce(list(region_masks.values()))
    # The follow-up's scale from the registration, in the baseline's millimetres (follow-up grid px × scale =
    # baseline grid px), per px of its working copy.
    pf_reg = gpb / reg.scale * rgb_f.shape[1] / grid_f.shape[1]
    if src_f != "card" and followup_px_per_mm is None:
        pf = pf_reg  # without a card of its own the follow-up's scale follows from the registration
    # How much closer (+) or further (-) the follow-up was taken: the change of the field of view's linear size
    # (geometric mean of width and height, so a camera turned by 90° is not "closer").
    fov_b = math.sqrt(rgb_b.shape[0] * rgb_b.shape[1]) / pb
    fov_f = math.sqrt(rgb_f.shape[0] * rgb_f.shape[1]) / pf
    scale_change = 100.0 * (fov_b / fov_f - 1.0)
    # The bootstrap's resampling depends only on how many tiles the overlap holds (both analyses measure the
    # pixels measured_mask(common)): drawn on the spare thread during the analyses.
    measured = measured_mask(common, px_per_mm=gpb)
    n_tiles = int(np.count_nonzero(_kept_tiles(measured, gpb)))
    fut_w = q_pool.submit(bootstrap_weights, n_tiles) if n_tiles >= 2 else None
    # Both photos' chroma is smoothed alike, over a few pixels of the coarser file (analyzer.colour.
    # chroma_sigma_mm): how much fine chroma is subtracted moves the index, and a photo taken 5 % closer
    # would otherwise read ~2 % smoother for that alone. Both files' scales in the baseline's millimetres
    # (the grid's): the follow-up's from the registration, whatever its own card or given scale says.
    source = min(pb * ds_b, pf_reg * ds_f)

    # Each photo's shading is the slope along its *own* light, so each is integrated along its own azimuth.
    # Both are measured over one mask, measured_mask(common) (= each analysis's maps.mask), so each thread
    # also takes its photo's share of what follows: squared slopes and the local RMS for the difference map.
    # A black-and-white photo cannot separate colour from relief: then both are compared in black and white.
    # With the card in both photos, the follow-up's shading is put on the baseline's contrast (a phone's tone
    # curve or a veil of stray light, read on the card's grey steps at the skin's brightness: card.
    # contrast_transfer); the baseline is the reference.
    contrast = _card_contrast(card_b, card_f, grid_b, common) if correct_contrast else float("nan")

    def side(rgb_in, card, gray, k=1.0):
        an = analyse(gray_copy(rgb_in) if gray else rgb_in, px_per_mm=gpb, valid=common,
                     white_balance=card_gains(card), grayscale=gray, source_px_per_mm=source, parallel=False,
                     contrast=k)
        s = an.maps.slope["scar"]
        return an, s * s, _local_rms(s, measured, gpb)

    # The baseline is analysed on a second thread while this one warps the follow-up. Whether the follow-up is
    # black-and-white is judged on its warped copy; until that exists its own grid stands in (the same photo),
    # and should the two ever disagree, the baseline is analysed again.
    gray_b = is_grayscale(grid_b, mask=common)
    gray_guess = gray_b or _grayscale_guess(grid_f, valid_f)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut_b = pool.submit(side, grid_b, card_b, gray_guess)
        warped_work = warp_image(rgb_b.shape[:2], rgb_f, m_work, order="cubic")
        warped, _ = to_analysis_grid(np.clip(warped_work, 0.0, 1.0, out=warped_work), px_per_mm=pb)
        gray_f = is_grayscale(warped, mask=common)
        gray = gray_b or gray_f
        an_f, sq_f, lf = side(warped, card_f, gray, contrast if math.isfinite(contrast) else 1.0)
        an_b, sq_b, lb = fut_b.result() if gray == gray_guess else side(grid_b, card_b, gray)
    in_b, in_f = (gray_copy(grid_b), gray_copy(warped)) if gray else (grid_b, warped)
    mask = an_b.maps.mask & an_f.maps.mask

    change, se_boot = change_interval(sq_b, sq_f, mask, px_per_mm=gpb,
                                      weights=fut_w.result() if fut_w is not None else None)
    se = math.sqrt(se_boot**2 + REPEATABILITY_SD_PCT**2) if np.isfinite(se_boot) else float("nan")
    ci = (change - 1.96 * se, change + 1.96 * se)
    mdc = 1.96 * se
    significant = bool(np.isfinite(change) and abs(change) > mdc and (ci[0] > 0 or ci[1] < 0))

    region_changes = {}
    for name, rm in region_masks.items():
        r_change, r_se = change_interval(sq_b, sq_f, mask & rm, px_per_mm=gpb)
        r_se = math.sqrt(r_se**2 + REPEATABILITY_SD_PCT**2) if np.isfinite(r_se) else float("nan")
        region_changes[name] = {"change_pct": r_change, "ci95_pct": (r_change - 1.96 * r_se, r_change + 1.96 * r_se),
                                "mdc_pct": 1.96 * r_se,
                                "significant": bool(np.isfinite(r_change) and abs(r_change) > 1.96 * r_se)}

    ref = float(np.mean(lb[mask])) if mask.any() else float("nan")
    diff = np.where(mask, 100.0 * (lf - lb) / ref, np.nan).astype(np.float32)

    metric_changes = {}
    for name in METRICS:
        a, b = an_b.metrics.get(name, float("nan")), an_f.metrics.get(name, float("nan"))
        metric_changes[name] = 100.0 * (b / a - 1.0) if (np.isfinite(a) and np.isfinite(b) and a != 0) \
            else float("nan")

    q_b, q_f = fut_q.result()
    if cameras is None:
        cameras = tuple(p.loaded.camera if p.loaded is not None else None for p in (prep_b, prep_f))
    consistency = assess(an_b, an_f, reg, q_b, q_f, rgb_b=in_b, rgb_f=in_f, mask=mask,
                         scale_change_pct=scale_change, grayscale=(gray_b, gray_f),
                         tone=tuple(None if c is None else c.tone_slope for c in (card_b, card_f)),
                         contrast_correction=contrast,
                         cameras=tuple(cameras))
    warn_b = warn_b + [GRAYSCALE_WARNING] if gray_b else warn_b
    warn_f = warn_f + [GRAYSCALE_WARNING] if gray_f else warn_f
    base_m = _measurement(an_b, quality=q_b, px_per_mm=pb * ds_b, source=src_b, warnings=warn_b + q_b.warnings,
                          card=card_b, camera=cameras[0])
    follow_m = _measurement(an_f, quality=q_f, px_per_mm=pf * ds_f, source=src_f,
                            warnings=warn_f + q_f.warnings, card=card_f, camera=cameras[1])
    return Comparison(
        baseline=base_m, followup=follow_m, change_pct=change, ci95_pct=ci, mdc_pct=mdc,
        significant=significant, metric_changes=metric_changes, registration=reg, difference_map=diff,
        scar_changes=_match_scars(an_b.pits.scars, an_f.pits.scars), baseline_grid=grid_b,
        aligned_followup=warped, overlap_mask=mask, consistency=consistency, region_changes=region_changes)


def _card_contrast(card_b, card_f, grid_b: np.ndarray, skin: np.ndarray) -> float:
    """The follow-up's log-contrast against the baseline's at the baseline skin's median brightness, read on the
    card in both photos (:func:`analyzer.card.contrast_transfer`); NaN without a card in both or usable steps."""
    if card_b is None or card_f is None or not skin.any():
        return float("nan")
    sub = (slice(None, None, 3), slice(None, None, 3))  # every 9th pixel is plenty for a median
    lin = linearise(grid_b[sub][skin[sub]]) * np.asarray(card_b.white_balance_gains, np.float32)
    return contrast_transfer(card_b, card_f, at_luminance=float(np.median(lin @ LUMA.astype(np.float32))))


def _grayscale_guess(grid_f: np.ndarray, valid_f: np.ndarray) -> bool:
    """Whether the follow-up is black-and-white, judged on its own grid before it is warped (compare checks it
    on the warped copy afterwards)."""
    return is_grayscale(grid_f, mask=valid_f if valid_f.any() else None)


def _not_card(card, grid: np.ndarray) -> np.ndarray | None:
    """Mask of everything but the calibration card (with a margin), or None without a card."""
    return None if card is None else ~card.mask(grid.shape[:2], margin_mm=3.0)


def _pixel_scaler(src_shape, dst_shape) -> np.ndarray:
    """3×3 map from pixel coordinates of an image to those of its resized copy (pixel centres aligned)."""
    fx, fy = dst_shape[1] / src_shape[1], dst_shape[0] / src_shape[0]
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])


def _grid_to_work(m_grid, grid_b_shape, work_b_shape, grid_f_shape, work_f_shape) -> np.ndarray:
    """A follow-up→baseline matrix on the analysis grids, expressed on the working-resolution images."""
    s_b = _pixel_scaler(work_b_shape, grid_b_shape)
    s_f = _pixel_scaler(work_f_shape, grid_f_shape)
    m = np.vstack([np.asarray(m_grid, float), [0.0, 0.0, 1.0]])
    return (np.linalg.inv(s_b) @ m @ s_f)[:2]


def _side(prep) -> float:
    """Linear size of a prepared photo in original pixels (geometric mean of width and height)."""
    return math.sqrt(prep.rgb.shape[0] * prep.rgb.shape[1]) * prep.downscale
