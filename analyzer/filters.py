"""Small shared filters in physical units (Gaussian scale space with masks).

All sizes arrive here already converted to pixels by the caller's one mm→px conversion.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np

__all__ = ["gaussian", "gaussians", "band_pass", "size_to_sigma_px", "median"]


def size_to_sigma_px(size_mm: float, px_per_mm: float) -> float:
    """Gaussian σ (px) whose Laplacian-of-Gaussian responds best to a blob of diameter ``size_mm``.

    A blob of diameter D has its scale-space extremum at σ = D / (2√2) (Lindeberg 1998).
    """
    return size_mm / (2.0 * np.sqrt(2.0)) * px_per_mm


def gaussian(img: np.ndarray, sigma_px: float, *, mask: np.ndarray | None = None) -> np.ndarray:
    """Gaussian blur of a 2-D float map; with ``mask``, normalised convolution ignores masked-out pixels.

    Borders are reflected (no dark/bright rim). ``sigma_px`` below 0.3 returns a copy.
    """
    img = np.asarray(img, dtype=np.float32)
    if sigma_px < 0.3:
        return img.copy()
    if mask is None or mask.all():
        return _blur(img, sigma_px)
    w = mask.astype(np.float32)
    return _blur(img * w, sigma_px) / _normaliser(mask, w, sigma_px)


#: Blurred masks kept for reuse (a comparison blurs both photos' maps with one common mask, and the bands and
#: the form filter share sigmas): about 1 MB each on a close-up's analysis grid; at most this many bytes in all.
_NORM_CACHE_BYTES = 48 * 2**20
_norm_cache: OrderedDict = OrderedDict()
_norm_lock = threading.Lock()


def _normaliser(mask: np.ndarray, w: np.ndarray, sigma_px: float) -> np.ndarray:
    """``max(blur(w), 1e-6)`` for a boolean mask (``w`` = it as float32), remembered by the mask's content."""
    if mask.dtype != bool:  # (weights other than 0/1 are not remembered)
        return np.maximum(_blur(w, sigma_px), 1e-6)
    key = (mask.shape, float(sigma_px), np.packbits(mask).tobytes())
    with _norm_lock:
        norm = _norm_cache.get(key)
        if norm is not None:
            _norm_cache.move_to_end(key)
            return norm
    norm = np.maximum(_blur(w, sigma_px), 1e-6)
    norm.setflags(write=False)
    with _norm_lock:
        _norm_cache[key] = norm
        while len(_norm_cache) > 1 and sum(v.nbytes for v in _norm_cache.values()) > _NORM_CACHE_BYTES:
            _norm_cache.popitem(last=False)
    return norm


def gaussians(img, sigmas_px, *, mask: np.ndarray | None = None) -> list:
    """:func:`gaussian` at several sigmas, of one map or of several, blurring the mask once per sigma.

    ``img`` is one (H, W) map (result: a list with one blur per sigma) or a list of maps of one shape (result:
    per map, that list). The values are those of :func:`gaussian`.
    """
    many = isinstance(img, (list, tuple))
    imgs = [np.asarray(i, dtype=np.float32) for i in (img if many else [img])]
    plain = mask is None or mask.all()
    w = None if plain else mask.astype(np.float32)
    out = [[None] * len(sigmas_px) for _ in imgs]
    for k, s in enumerate(sigmas_px):
        norm = None if plain or s < 0.3 else _normaliser(mask, w, s)
        for i, im in enumerate(imgs):
            if s < 0.3:
                out[i][k] = im.copy()
            elif plain:
                out[i][k] = _blur(im, s)
            else:
                out[i][k] = _blur(im * w, s) / norm
    return out if many else out[0]


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    # Wide kernels are slow and pointless at full resolution: blur a reduced copy (the result is smooth, so
    # bilinear upsampling loses nothing visible) — the same idea as a Gaussian pyramid.
    f = 1
    while sigma_px / (2 * f) >= 3.0 and min(img.shape[:2]) // (2 * f) >= 16:
        f *= 2
    if f == 1:
        k = int(2 * np.ceil(3 * sigma_px) + 1)
        return cv2.GaussianBlur(img, (k, k), sigma_px, borderType=cv2.BORDER_REFLECT)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    s = np.sqrt(max(sigma_px**2 - (0.5 * f) ** 2, 0.25)) / f  # area averaging already blurred a little
    k = int(2 * np.ceil(3 * s) + 1)
    small = cv2.GaussianBlur(small, (k, k), s, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def band_pass(img: np.ndarray, *, px_per_mm: float, min_mm: float, max_mm: float,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Difference-of-Gaussians band holding features of diameter ``min_mm``..``max_mm``.

    Parameters
    ----------
    img : (H, W) float
    px_per_mm : float
    min_mm, max_mm : float
        Feature sizes (diameters, mm) bounding the band; converted with :func:`size_to_sigma_px`.
    mask : (H, W) bool, optional
        Valid pixels; invalid ones do not leak into the smoothing.
    """
    lo = gaussian(img, size_to_sigma_px(min_mm, px_per_mm), mask=mask)
    hi = gaussian(img, size_to_sigma_px(max_mm, px_per_mm), mask=mask)
    return lo - hi


#: Arrays at least this long are selected from a bracket found on a strided sample (see :func:`median`).
_BRACKET_MIN_SIZE = 20_000
_BRACKET_SAMPLE = 4096


def median(x: np.ndarray):
    """``np.median`` of a 1-D array, exactly, with one selection on a few per cent of it.

    A strided sample brackets the middle; only the values inside the bracket are partitioned (a full
    ``np.partition`` of a 270 000-pixel map costs ~2 ms, the bracket ~0.3 ms). The counts below and inside
    the bracket prove that it holds the middle; if it does not, the whole array is partitioned, so the value is
    always that of ``np.median`` (NaN-free input).
    """
    n = x.size
    if n == 0:
        return x.dtype.type(np.nan) if x.dtype.kind == "f" else np.float64(np.nan)
    k = n // 2
    ranks = (k,) if n % 2 else (k - 1, k)
    if n >= _BRACKET_MIN_SIZE:
        sample = np.sort(x[:: n // _BRACKET_SAMPLE])
        m = sample.size
        j, d = (k * m) // n, int(3.0 * np.sqrt(m)) + 4
        lo, hi = sample[max(j - d, 0)], sample[min(j + d, m - 1)]
        below = int(np.count_nonzero(x < lo))
        inside = x[(x >= lo) & (x <= hi)]
        if below <= ranks[0] and below + inside.size > ranks[-1]:
            part = np.partition(inside, [r - below for r in ranks])
            vals = [part[r - below] for r in ranks]
            return vals[0] if n % 2 else (vals[1] + vals[0]) * x.dtype.type(0.5)
    part = np.partition(x, k)
    return part[k] if n % 2 else (part[k] + part[:k].max()) * x.dtype.type(0.5)
