"""Small shared filters in physical units (Gaussian scale space with masks).

All sizes arrive here already converted to pixels by the caller's one mm→px conversion.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["gaussian", "band_pass", "size_to_sigma_px"]


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
    ksize = int(2 * np.ceil(3 * sigma_px) + 1)
    if mask is None:
        return cv2.GaussianBlur(img, (ksize, ksize), sigma_px, borderType=cv2.BORDER_REFLECT)
    w = mask.astype(np.float32)
    num = cv2.GaussianBlur(img * w, (ksize, ksize), sigma_px, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w, (ksize, ksize), sigma_px, borderType=cv2.BORDER_REFLECT)
    return num / np.maximum(den, 1e-6)


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
