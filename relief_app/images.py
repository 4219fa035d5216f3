"""Pictures for the dashboard: thumbnails, the 50 % ghost of the baseline, before/after overlays.

Everything returns ``uint8`` arrays that ``st.image`` shows as they are. Decoding goes through Pillow with the
HEIC opener that :mod:`analyzer.loading` registers, so every format the library reads can be previewed.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

import analyzer.loading  # noqa: F401  (registers the HEIC/HEIF opener with Pillow)

__all__ = ["thumbnail", "ghost", "blend", "to_uint8"]


def thumbnail(data: bytes, *, max_side: int = 640) -> np.ndarray | None:
    """An upright RGB ``uint8`` preview of a photo file, at most ``max_side`` px; ``None`` if it cannot be read.

    JPEGs are reduced while decoding (``draft``), so a 12 MP photo costs a few milliseconds.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > analyzer.loading.MAX_HEADER_PIXELS:
                return None
            im.draft("RGB", (max_side, max_side))
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except Exception:  # a preview never breaks the page; the analysis reports unreadable files
        return None


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float ``[0, 1]`` (the library's image form) -> ``uint8``; ``uint8`` passes through."""
    a = np.asarray(rgb)
    if a.dtype == np.uint8:
        return a
    return (np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def ghost(rgb: np.ndarray, *, opacity: float = 0.5) -> np.ndarray:
    """The photo as RGBA with the given opacity: a faint guide to frame a retake like the baseline."""
    a = to_uint8(rgb)
    alpha = np.full(a.shape[:2] + (1,), int(round(255 * float(np.clip(opacity, 0.0, 1.0)))), np.uint8)
    return np.concatenate([a[..., :3], alpha], axis=-1)


def blend(before: np.ndarray, after: np.ndarray, *, opacity: float) -> np.ndarray:
    """``after`` laid over ``before`` with ``opacity`` in ``[0, 1]`` (0 = only before, 1 = only after).

    Both must have the same shape (the comparison puts the follow-up on the baseline's grid).
    """
    b = to_uint8(before).astype(np.float32)
    f = to_uint8(after).astype(np.float32)
    if b.shape != f.shape:
        raise ValueError(f"before {b.shape} and after {f.shape} differ; align the photos first")
    t = float(np.clip(opacity, 0.0, 1.0))
    return ((1.0 - t) * b + t * f + 0.5).astype(np.uint8)
