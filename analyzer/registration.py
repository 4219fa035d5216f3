"""Register a follow-up photo of a skin area to the baseline photo of the same area.

The two photos are taken weeks apart: the framing differs (shift, rotation, zoom), and so do exposure,
white balance, light direction and pigment (freckles fade, redness comes and goes). What stays put is the
skin's texture — pores, scars, fine lines. Registration therefore works on a *local contrast normalised*
gray image (exposure, white balance and gentle gradients divide out), matches local features on it, fits a
similarity transform robustly and refines it by intensity correlation (ECC).

Pipeline
--------
1. gray (Rec. 601 luminance for RGB), downscale both photos by one common factor so the larger side is
   ``<= max_side_px`` (``cv2.INTER_AREA``);
2. local contrast normalisation: subtract a Gaussian of sigma 2 mm, divide by the local standard deviation
   (same sigma);
3. SIFT features (detected on a copy of at most 300 px — SIFT doubles its input internally, so this still
   resolves pores of 1-2 working pixels at a fraction of the cost; the two photos are prepared in
   parallel threads), nearest-neighbour matching with Lowe's ratio test, a similarity transform by RANSAC
   (``cv2.estimateAffinePartial2D``, with its Levenberg-Marquardt refinement of the inliers);
4. ECC refinement (``cv2.findTransformECC``, affine motion, the similarity as initial guess) on a
   band-passed copy of at most 400 px; the refinement is kept only if it converges, stays close to the
   RANSAC estimate and does not lower the normalised cross-correlation;
5. the matrix is scaled back to full resolution and judged (inliers, overlap, correlation, scale).

Accuracy (synthetic skin, tests/test_registration.py): with the light unchanged the matrix is right to
about 0.01 px; turning the light moves the shading pattern of every pit, which biases any registration
by about 0.04 mm for a 20 degree turn and 0.15 mm for 60 degrees. Speed: two 12 MP float32 gray photos
take about 0.2 s on 2 cores (``test_twelve_megapixel_pair_registers_quickly``).

Coordinates: a 2x3 matrix ``M`` maps a moving (follow-up) pixel ``(x, y)`` (column, row; pixel centres at
integer coordinates) to the fixed (baseline) pixel ``M @ (x, y, 1)``, as ``cv2.warpAffine`` expects.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .errors import ImageError, OptionError

__all__ = ["Registration", "register", "warp_to", "warp_image", "warp_overlap", "FAIL_MESSAGE"]

#: Sigma (mm) of the Gaussian that local contrast normalisation subtracts and divides by.
NORMALISE_SIGMA_MM = 2.0
#: Acceptance thresholds (see ``register``). NCC is that of the band-passed images on the overlap.
MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.25
MIN_OVERLAP = 0.3
MIN_NCC = 0.15
#: With a correlation this strong after alignment, fewer feature matches suffice (a light turned between visits,
#: or the redness inside the scars fading over the course, changes the features, not the skin): at least
#: MIN_INLIERS_STRONG_NCC inliers. Unrelated skin gets up to ~8 chance inliers but no correlation (|NCC| < 0.1);
#: twice the validation's scar redness fading left 8-17 inliers at NCC 0.60-0.75 (12 refused two of four).
STRONG_NCC = 0.5
MIN_INLIERS_STRONG_NCC = 6
SCALE_RANGE = (0.5, 2.0)
#: Smallest usable photo side, in pixels.
MIN_SIDE_PX = 64

FAIL_MESSAGE = ("could not align the follow-up with the baseline — "
                "photograph the same area, with the same framing")

_SIFT_FEATURES = 1500
_DETECT_MAX_SIDE = 300    # features are detected on a copy no larger than this (see _features)
_RATIO = 0.85              # Lowe ratio test; 0.85 keeps matches under a turned light or blur (see report)
_RANSAC_PX = 3.0          # RANSAC reprojection threshold, working-resolution pixels
_ECC_MAX_SIDE = 400       # ECC runs on a copy no larger than this
_ECC_MAX_CORNER_MOVE = 4.0  # ECC may move the ECC-level corners this far (px) from the RANSAC estimate

_ORDERS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@dataclass
class Registration:
    """Result of :func:`register`.

    Attributes
    ----------
    matrix : ndarray, shape (2, 3), float64
        Maps moving (follow-up) pixel coordinates to fixed (baseline) pixel coordinates at full resolution.
        When ``ok`` is False it is the best estimate found (identity if none) and must not be used.
    ok : bool
        True when the alignment passed every check (inliers, overlap, correlation, scale).
    inliers : int
        Feature matches consistent with the similarity transform.
    inlier_ratio : float
        ``inliers`` divided by the matches that passed the ratio test.
    scale : float
        Moving-to-fixed scale factor (>1: the follow-up was taken from further away).
    rotation_deg : float
        Rotation angle of the matrix, ``atan2(M[1, 0], M[0, 0])`` in degrees; positive turns the moving
        image clockwise as displayed (y axis pointing down).
    shift_mm : tuple of float
        Translation part ``(tx, ty)`` of ``matrix``, in mm of the baseline.
    ncc : float
        Normalised cross-correlation of the band-passed images on the overlap after warping (-1..1).
    overlap_fraction : float
        Fraction of the fixed image covered by the warped moving image (0..1).
    message : str
        One sentence saying what to do when ``ok`` is False; empty otherwise.
    refined : bool
        True when the ECC refinement was accepted (otherwise the RANSAC similarity is returned).
    matches : int
        Matches that passed the ratio test.
    timings_ms : dict of str to float
        Wall time of each stage (prepare, match, ransac, ecc) and the total, in ms.
    """

    matrix: np.ndarray
    ok: bool
    inliers: int = 0
    inlier_ratio: float = 0.0
    scale: float = float("nan")
    rotation_deg: float = float("nan")
    shift_mm: tuple[float, float] = (float("nan"), float("nan"))
    ncc: float = float("nan")
    overlap_fraction: float = 0.0
    message: str = ""
    refined: bool = False
    matches: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """JSON-safe dictionary (lists and plain floats; NaN becomes None)."""
        d = asdict(self)
        d["matrix"] = [[_json_float(v) for v in row] for row in np.asarray(self.matrix, dtype=float)]
        d["shift_mm"] = [_json_float(v) for v in self.shift_mm]
        for k in ("inlier_ratio", "scale", "rotation_deg", "ncc", "overlap_fraction"):
            d[k] = _json_float(d[k])
        d["ok"] = bool(self.ok)
        d["refined"] = bool(self.refined)
        d["inliers"] = int(self.inliers)
        d["matches"] = int(self.matches)
        d["timings_ms"] = {k: _json_float(v) for k, v in self.timings_ms.items()}
        return d


def _json_float(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------------------------------
# input handling and band-pass
# --------------------------------------------------------------------------------------------------

def _check_image(img, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise ImageError(f"the {name} image must be a numpy array — load the photo with analyzer.load_image first")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise ImageError(f"the {name} image has shape {img.shape}; pass a gray (H, W) or RGB (H, W, 3) array")
    if min(img.shape[:2]) < MIN_SIDE_PX:
        raise ImageError(f"the {name} image is {img.shape[1]}×{img.shape[0]} px; at least "
                         f"{MIN_SIDE_PX}×{MIN_SIDE_PX} px are needed — use a larger photo")
    return img


def _to_gray32(img: np.ndarray) -> np.ndarray:
    """Gray float32 without changing the range (luminance for RGB; alpha dropped)."""
    if img.dtype != np.float32:
        img = img.astype(np.float32)
    if img.ndim == 3:
        # Rec. 601 luminance: pores and scars show as shading in every channel; pigment weighs least here.
        img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    return img


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas are done on a reduced copy (the result is smooth anyway)."""
    if sigma <= 0:
        return img
    k = int(sigma // 3)
    h, w = img.shape
    k = max(1, min(k, min(h, w) // 16))
    if k <= 1:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(img, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _normalise(gray: np.ndarray, sigma_px: float) -> np.ndarray:
    """Local contrast normalisation: (I - G*I) / sqrt(G*(I - G*I)^2).

    Dividing by the local standard deviation removes exposure, white balance and gentle illumination
    gradients (all locally multiplicative); subtracting the local mean removes the form.
    """
    hp = gray - _smooth(gray, sigma_px)
    var = _smooth(hp * hp, sigma_px)
    # A floor relative to the image's typical contrast keeps flat regions (and flat images) at ~0
    # instead of amplifying rounding noise.
    floor = 1e-3 * float(np.sqrt(np.mean(var))) + 1e-12
    return hp / (np.sqrt(np.maximum(var, 0)) + floor)


def _to_u8(z: np.ndarray) -> np.ndarray:
    """Map a normalised image (about zero mean, unit std) to uint8 for the feature detector."""
    return np.clip(z * 32.0 + 128.0, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------------

def _h(m: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = m
    return out


def _scaler(full_shape, small_shape) -> np.ndarray:
    """3x3 map from full-resolution pixel coordinates to those of a cv2.resize'd copy.

    Per axis, x_small = f (x_full + 0.5) - 0.5 with f = small / full (pixel centres as in cv2.resize).
    """
    fx = small_shape[1] / full_shape[1]
    fy = small_shape[0] / full_shape[0]
    return np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])


def _resize(img: np.ndarray, f: float) -> np.ndarray:
    """Area-average downscale by about f (no-op for f >= 1)."""
    if f >= 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _decompose(m: np.ndarray) -> tuple[float, float]:
    """Scale and rotation (deg) of the similarity closest to the 2x2 part of m."""
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    # closest similarity [[p, -q], [q, p]]
    p, q = 0.5 * (a + d), 0.5 * (c - b)
    return float(math.hypot(p, q)), float(math.degrees(math.atan2(q, p)))


def _overlap_fraction(fixed_shape, moving_shape, m: np.ndarray) -> float:
    """Area of (warped moving rectangle ∩ fixed rectangle) / fixed area, exactly (convex polygons)."""
    hf, wf = fixed_shape[:2]
    hm, wm = moving_shape[:2]
    # pixel footprints: centres at integers, so the image covers [-0.5, w - 0.5]
    rect_m = np.array([[-0.5, -0.5], [wm - 0.5, -0.5], [wm - 0.5, hm - 0.5], [-0.5, hm - 0.5]])
    poly = rect_m @ m[:, :2].T + m[:, 2]
    if np.linalg.det(m[:, :2]) < 0:
        poly = poly[::-1]
    rect_f = np.array([[-0.5, -0.5], [wf - 0.5, -0.5], [wf - 0.5, hf - 0.5], [-0.5, hf - 0.5]])
    if not np.all(np.isfinite(poly)):
        return 0.0
    area, _ = cv2.intersectConvexConvex(poly.astype(np.float32), rect_f.astype(np.float32))
    return float(max(area, 0.0) / (hf * wf))


# --------------------------------------------------------------------------------------------------
# public: warp
# --------------------------------------------------------------------------------------------------

def warp_to(fixed_shape, moving_image: np.ndarray, matrix: np.ndarray, *,
            order: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Warp the moving image into the fixed image's frame.

    Parameters
    ----------
    fixed_shape : tuple of int
        Shape of the fixed image; only ``(H, W)`` is used.
    moving_image : ndarray, (H', W') or (H', W', C), float32
        Gray or RGB image to warp (other dtypes are converted to float32).
    matrix : array_like, shape (2, 3)
        Moving pixel -> fixed pixel, as returned in :attr:`Registration.matrix`.
    order : {"nearest", "linear", "cubic"}, keyword-only
        Interpolation.

    Returns
    -------
    warped : ndarray, (H, W) or (H, W, C), float32
        The moving image in the fixed frame; 0 outside the overlap (:func:`warp_image`).
    valid : ndarray, (H, W), bool
        True where the pixel was interpolated from inside the moving image only, eroded by one pixel
        (two for cubic) so interpolation borders are excluded (:func:`warp_overlap`).
    """
    return (warp_image(fixed_shape, moving_image, matrix, order=order),
            warp_overlap(fixed_shape, np.shape(moving_image), matrix, order=order))


def _warp_args(matrix, order: str) -> tuple[np.ndarray, int]:
    if order not in _ORDERS:
        raise OptionError(f"order={order!r} is not known; use one of {', '.join(_ORDERS)}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise OptionError("matrix must be a finite 2×3 array — pass Registration.matrix")
    return m, _ORDERS[order]


def warp_image(fixed_shape, moving_image: np.ndarray, matrix: np.ndarray, *, order: str = "linear") -> np.ndarray:
    """The moving image in the fixed frame, 0 outside the overlap: the first value of :func:`warp_to`."""
    m, flag = _warp_args(matrix, order)
    if not isinstance(moving_image, np.ndarray) or moving_image.ndim not in (2, 3):
        raise ImageError("the moving image must be a gray (H, W) or colour (H, W, C) numpy array")
    h, w = int(fixed_shape[0]), int(fixed_shape[1])
    img = moving_image if moving_image.dtype == np.float32 else moving_image.astype(np.float32)
    if img.ndim == 3 and img.shape[2] > 4:
        return np.stack([cv2.warpAffine(np.ascontiguousarray(img[:, :, c]), m, (w, h), flags=flag,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                         for c in range(img.shape[2])], axis=2)
    warped = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=flag,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped[:, :, None] if img.ndim == 3 and warped.ndim == 2 else warped


def warp_overlap(fixed_shape, moving_shape, matrix: np.ndarray, *, order: str = "linear") -> np.ndarray:
    """Where a warp by ``matrix`` interpolates from inside a ``moving_shape`` image only: the second value of
    :func:`warp_to`, without warping any pixels (it depends on the shapes and the matrix alone)."""
    m, _ = _warp_args(matrix, order)
    h, w = int(fixed_shape[0]), int(fixed_shape[1])
    # Warp a full-white mask with linear interpolation; only pixels whose whole interpolation footprint lies
    # inside the moving image stay exactly 255.
    ones = np.full(tuple(moving_shape[:2]), 255, np.uint8)
    mask = cv2.warpAffine(ones, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) == 255
    erode = 2 if order == "cubic" else 1
    return cv2.erode(mask.view(np.uint8), np.ones((2 * erode + 1, 2 * erode + 1), np.uint8),
                     borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)


# --------------------------------------------------------------------------------------------------
# public: register
# --------------------------------------------------------------------------------------------------

def _ncc(fixed_bp: np.ndarray, moving_bp: np.ndarray, m: np.ndarray) -> float:
    """NCC of fixed and warped moving band-passed images on the valid overlap."""
    warped, valid = warp_to(fixed_bp.shape, moving_bp, m)
    n = int(valid.sum())
    if n < 100:
        return float("nan")
    a = fixed_bp[valid].astype(np.float64)
    b = warped[valid].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    # einsum, not `@`: threaded BLAS stalls for tens of ms on a busy machine for these dot products
    den = math.sqrt(float(np.einsum("i,i->", a, a)) * float(np.einsum("i,i->", b, b)))
    return float(np.einsum("i,i->", a, b) / den) if den > 0 else float("nan")


def _features(z: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints (N, 2) in the coordinates of ``z`` and their descriptors (N, 128) float32.

    SIFT doubles its input internally, so detecting on a copy of at most _DETECT_MAX_SIDE px still resolves
    structures of 1-2 working pixels at a fraction of the cost (on synthetic skin 400 px matched as many
    true pairs under blur and a turned light as 500 or 700 px did; 300 px keeps 100+ inliers on a 12 MP
    recapture, ECC then gives the same matrix within 1e-4, and SIFT costs 40 % less).
    """
    f = min(1.0, _DETECT_MAX_SIDE / max(z.shape))
    small = _resize(z, f)
    sift = cv2.SIFT_create(nfeatures=_SIFT_FEATURES, contrastThreshold=0.02)
    m8 = None
    if mask is not None:
        m8 = cv2.resize(mask.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
        m8 = cv2.erode(m8, np.ones((5, 5), np.uint8))  # no descriptor may straddle the excluded area
    kps, desc = sift.detectAndCompute(_to_u8(small), m8)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), None
    pts = np.float32([k.pt for k in kps])
    back = np.linalg.inv(_scaler(z.shape, small.shape))
    pts = pts @ back[:2, :2].T.astype(np.float32) + back[:2, 2].astype(np.float32)
    return pts, desc


def _prepare(img: np.ndarray, f: float, sigma: float, mask: np.ndarray | None = None):
    """Gray, downscaled, normalised and band-passed copies of one photo plus its features.

    Returns the full-resolution shape, the downscaled gray copy (None if it is not finite), the normalised
    copy, the band-passed copy, keypoints and descriptors.
    """
    gray = _to_gray32(img)
    small = _resize(gray, f)
    # Checked after downscaling (NaN/inf survive area averaging) to avoid a pass over 12 MP.
    if not np.isfinite(small).all():
        return gray.shape, None, None, None, None, None
    z = _normalise(small, sigma)
    m_small = None
    if mask is not None:  # excluded areas (e.g. the calibration card, which moves between visits) go neutral
        m_small = cv2.resize(mask.astype(np.uint8), (z.shape[1], z.shape[0]),
                             interpolation=cv2.INTER_NEAREST).astype(bool)
        z = np.where(m_small, z, np.float32(0.0))
    # Band-passed copy for ECC and NCC: a light low-pass removes pixel noise and aliasing.
    bp = cv2.GaussianBlur(z, (0, 0), 1.0)
    pts, desc = _features(z, m_small)
    return gray.shape, small, z, bp, pts, desc


def _ecc_refine(fixed_bp, moving_bp, m_work: np.ndarray) -> np.ndarray | None:
    """ECC (affine) refinement on a copy no larger than _ECC_MAX_SIDE; None when it fails."""
    f = min(1.0, _ECC_MAX_SIDE / max(*fixed_bp.shape, *moving_bp.shape))
    if f < 1.0:
        fx = _resize(fixed_bp, f)
        mv = _resize(moving_bp, f)
        s_f = _scaler(fixed_bp.shape, fx.shape)
        s_m = _scaler(moving_bp.shape, mv.shape)
    else:
        fx, mv = fixed_bp, moving_bp
        s_f = s_m = np.eye(3)
    m_small = (s_f @ _h(m_work) @ np.linalg.inv(s_m))[:2]
    # ECC finds W with moving(W x) ≈ fixed(x): W maps fixed -> moving, the inverse of ours.
    warp = cv2.invertAffineTransform(m_small).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    try:
        _, warp = cv2.findTransformECC(fx, mv, warp, cv2.MOTION_AFFINE, criteria, None, 3)
    except cv2.error:
        return None
    if not np.all(np.isfinite(warp)):
        return None
    m_ecc_small = cv2.invertAffineTransform(warp.astype(np.float64))
    # Guard against a jump to a different optimum: the corners may move only a few pixels.
    h, w = fx.shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
    inv_a = np.linalg.inv(_h(m_small))[:2]
    inv_b = np.linalg.inv(_h(m_ecc_small))[:2]
    if np.max(np.abs(inv_a @ corners - inv_b @ corners)) > _ECC_MAX_CORNER_MOVE:
        return None
    return (np.linalg.inv(s_f) @ _h(m_ecc_small) @ s_m)[:2]


def register(fixed: np.ndarray, moving: np.ndarray, *, px_per_mm: float,
             max_side_px: int = 1000, fixed_mask: np.ndarray | None = None,
             moving_mask: np.ndarray | None = None) -> Registration:
    """Register a follow-up photo (moving) to the baseline photo (fixed) of the same skin area.

    Parameters
    ----------
    fixed : ndarray, (H, W) float32 in any range, or (H, W, 3) RGB float32 in [0, 1]
        The baseline photo.
    moving : ndarray, same forms as ``fixed``
        The follow-up photo, at about the same scale (zoom within ±20 % is expected; up to ×2 is accepted).
    px_per_mm : float, keyword-only
        Scale of the fixed image, pixels per mm; sets the normalisation sigma and ``shift_mm``.
    max_side_px : int, keyword-only
        Both photos are reduced by one common factor so that the larger side is at most this many pixels
        before any work; the matrix is returned at full resolution.
    fixed_mask, moving_mask : ndarray (H, W) bool, optional
        Pixels that may be used (False = ignore, e.g. the calibration card, which is laid down anew at each
        visit and would otherwise pull the alignment to itself).

    Returns
    -------
    Registration
        ``matrix`` maps moving pixels to fixed pixels; ``ok`` is False (with a one-sentence ``message``)
        when the photos cannot be aligned. Never raises for unalignable content, only for unusable input.

    Raises
    ------
    ImageError
        An input is not a gray/RGB array or smaller than 64 px.
    OptionError
        ``px_per_mm`` or ``max_side_px`` is impossible.

    Notes
    -----
    ``ok`` requires at least 20 inliers with an inlier ratio of at least 0.25 — or, when the aligned
    band-pass NCC is at least 0.5, at least 6 inliers (a strongly turned light, or redness in the scars
    fading, changes the features, not the skin) — plus an overlap of at least 0.3 of the fixed image, a
    band-pass NCC of at least 0.15 and a scale within [0.5, 2]. On matching synthetic skin photos with different exposure,
    white balance, light direction and pigment the NCC is 0.7–0.97; on unrelated skin (rendered, and the
    real photos of tests/data/real) it stays below 0.1 in magnitude with at most about 8 chance inliers, and a
    registration off by 3 px already drops it to about 0.1.

    References
    ----------
    D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60 (2004).
    G. D. Evangelidis, E. Z. Psarakis, "Parametric image alignment using enhanced correlation coefficient
    maximization", IEEE TPAMI 30 (2008).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = cv2.GaussianBlur(rng.random((400, 400)).astype(np.float32), (0, 0), 1.5)
    >>> reg = register(img, img, px_per_mm=10)
    >>> bool(reg.ok), np.allclose(reg.matrix, np.eye(2, 3), atol=0.05)
    (True, True)
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name):
        nonlocal t0
        t = time.perf_counter()
        timings[name] = round((t - t0) * 1000, 2)
        t0 = t

    try:
        px_per_mm = float(px_per_mm)
    except (TypeError, ValueError):
        raise OptionError("px_per_mm must be a number of pixels per mm, e.g. px_per_mm=10") from None
    if not math.isfinite(px_per_mm) or px_per_mm <= 0:
        raise OptionError(f"px_per_mm={px_per_mm} is impossible; pass the photo's positive pixels per mm")
    if not isinstance(max_side_px, (int, np.integer)) or max_side_px < 128:
        raise OptionError(f"max_side_px={max_side_px!r} is too small; use an integer of at least 128")
    fixed = _check_image(fixed, "baseline")
    moving = _check_image(moving, "follow-up")

    # One common factor so the nominal scale stays the same for both copies.
    f = min(1.0, max_side_px / max(*fixed.shape[:2], *moving.shape[:2]))
    sigma = NORMALISE_SIGMA_MM * px_per_mm * f
    sigma = float(np.clip(sigma, 2.0, min(*fixed.shape[:2], *moving.shape[:2]) * f / 4))
    # The two photos are prepared in parallel (OpenCV releases the GIL; SIFT is mostly single-threaded).
    with ThreadPoolExecutor(max_workers=2) as pool:
        (f_shape, fs, fz, fbp, kf, df), (m_shape, ms, mz, mbp, km, dm) = pool.map(
            lambda im: _prepare(im[0], f, sigma, im[1]), ((fixed, fixed_mask), (moving, moving_mask)))
    lap("prepare")
    if fs is None or ms is None:
        raise ImageError("an image contains NaN or infinite values — pass the photo as loaded, without masking")

    def result(ok=False, msg="", **kw):
        timings["total"] = round(sum(timings.values()), 2)
        return Registration(ok=ok, message=msg, timings_ms=timings, **kw)

    if df is None or dm is None or len(kf) < 8 or len(km) < 8:
        return result(matrix=np.eye(2, 3), msg=(
            "could not align the follow-up with the baseline because too little skin texture was found — "
            "photograph the same area in focus, with the same framing"))

    matcher = cv2.BFMatcher(cv2.NORM_L2)
    knn = matcher.knnMatch(dm, df, k=2)
    good = [p[0] for p in knn if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
    lap("match")
    n_good = len(good)
    if n_good < 4:
        return result(matrix=np.eye(2, 3), matches=n_good, msg=FAIL_MESSAGE)

    src = km[[g.queryIdx for g in good]]
    dst = kf[[g.trainIdx for g in good]]
    m_work, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                              ransacReprojThreshold=_RANSAC_PX,
                                              maxIters=5000, confidence=0.999)
    lap("ransac")
    if m_work is None or inl is None:
        return result(matrix=np.eye(2, 3), matches=n_good, msg=FAIL_MESSAGE)
    n_inl = int(inl.sum())
    ratio = n_inl / n_good

    refined = False
    scale_work, _ = _decompose(m_work)
    if n_inl >= MIN_INLIERS_STRONG_NCC and SCALE_RANGE[0] <= scale_work <= SCALE_RANGE[1]:
        with ThreadPoolExecutor(max_workers=1) as pool:  # the RANSAC matrix's NCC while ECC refines it
            fut_ncc = pool.submit(_ncc, fbp, mbp, m_work)
            m_ecc = _ecc_refine(fbp, mbp, m_work)
            ncc = ncc_ransac = fut_ncc.result()
        if m_ecc is not None:
            ncc_ecc = _ncc(fbp, mbp, m_ecc)
            if math.isfinite(ncc_ecc) and (not math.isfinite(ncc_ransac) or ncc_ecc >= ncc_ransac):
                m_work, ncc, refined = m_ecc, ncc_ecc, True
    else:
        ncc = ncc_ransac = _ncc(fbp, mbp, m_work)
    lap("ecc")

    matrix = (np.linalg.inv(_scaler(f_shape, fs.shape)) @ _h(m_work) @ _scaler(m_shape, ms.shape))[:2]
    scale, rot = _decompose(matrix)
    overlap = _overlap_fraction(f_shape, m_shape, matrix)
    shift = (float(matrix[0, 2] / px_per_mm), float(matrix[1, 2] / px_per_mm))

    if overlap < MIN_OVERLAP and n_inl >= MIN_INLIERS and math.isfinite(ncc) and ncc >= MIN_NCC:
        msg = (f"the follow-up overlaps only {overlap:.0%} of the baseline — "
               "photograph the same area, with the same framing")
    elif (not ((n_inl >= MIN_INLIERS and ratio >= MIN_INLIER_RATIO)
               or (n_inl >= MIN_INLIERS_STRONG_NCC and math.isfinite(ncc) and ncc >= STRONG_NCC))
          or overlap < MIN_OVERLAP
          or not (math.isfinite(ncc) and ncc >= MIN_NCC)
          or not (SCALE_RANGE[0] <= scale <= SCALE_RANGE[1])):
        msg = FAIL_MESSAGE
    else:
        msg = ""
    return result(ok=not msg, msg=msg, matrix=matrix, inliers=n_inl, inlier_ratio=float(ratio),
                  scale=scale, rotation_deg=rot, shift_mm=shift, ncc=float(ncc),
                  overlap_fraction=overlap, refined=refined, matches=n_good)
