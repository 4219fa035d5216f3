"""Pictures for the dashboard: thumbnails, the 50 % ghost of the baseline, before/after overlays, region outlines.

Everything returns ``uint8`` arrays; :func:`figure` turns one into the HTML the pages show (``st.html``).
Decoding goes through Pillow with the HEIC opener that :mod:`analyzer.loading` registers, so every format the
library reads can be previewed.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping

import cv2
import numpy as np
from PIL import Image, ImageOps

import analyzer.loading  # noqa: F401  (registers the HEIC/HEIF opener with Pillow)

__all__ = ["thumbnail", "ghost", "blend", "to_uint8", "draw_regions", "box_outline", "outside_warp",
           "fill", "figure", "NEUTRAL_GREY",
           "REGION_COLOURS", "region_colours"]

#: Colour of the area outside what both photos of a comparison show (neutral, mid-light grey).
NEUTRAL_GREY = (200, 200, 200)
#: Outline colours of the regions drawn on a photo, in turn: Streamlit's text colour name and its RGB.
REGION_COLOURS = (("orange", (255, 164, 33)), ("blue", (28, 131, 225)), ("violet", (128, 61, 245)),
                  ("green", (33, 195, 84)), ("red", (255, 75, 75)), ("yellow", (250, 202, 43)))


def figure(picture: np.ndarray | bytes, *, caption: str = "", max_width_px: int | None = None) -> str:
    """HTML of a picture with its caption, the picture inside the page itself (a ``data:`` URL).

    ``st.image`` serves every picture from ``/media/<hash>``, a URL that answers without sign-in while the session
    that showed it lasts (and a few minutes after), that the browser may keep in its disk cache and a proxy in its
    access log: a patient's face, or a patient link's QR code, must not be reachable that way. Pictures in the
    page travel only over the signed-in session's own connection.

    Parameters
    ----------
    picture : (H, W, 3) or (H, W) array (uint8, or float in [0, 1]), (H, W, 4) RGBA, or PNG/JPEG bytes
        An array is sent as a JPEG (quality 90; with alpha, a PNG); bytes as they are.
    caption : str
        Plain text (shown as typed: it may hold a file name or a region typed by anyone).
    max_width_px : int, optional
        Default: the width of the column.
    """
    if isinstance(picture, (bytes, bytearray)):
        data, mime = bytes(picture), "image/png" if bytes(picture[:4]) == b"\x89PNG" else "image/jpeg"
    else:
        a = to_uint8(picture)
        if a.ndim == 3 and a.shape[2] == 4:  # (a see-through ghost: PNG keeps its alpha)
            data, mime = cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGBA2BGRA))[1].tobytes(), "image/png"
        else:
            bgr = a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
            data, mime = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), "image/jpeg"
    width = f"max-width:{int(max_width_px)}px;" if max_width_px else ""
    src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    text = html.escape(caption)
    return (f'<figure class="relief-picture" style="margin:0 0 1rem 0;{width}">'
            f'<img src="{src}" alt="{text}" style="width:100%;height:auto;display:block">'
            f'<figcaption style="font-size:0.875rem;opacity:0.7;text-align:center;padding-top:0.25rem">{text}'
            "</figcaption></figure>")


def thumbnail(data: bytes, *, max_side: int = 640) -> np.ndarray | None:
    """An upright RGB ``uint8`` preview of a photo file, at most ``max_side`` px; ``None`` if it cannot be read.

    JPEGs are reduced while decoding (``draft``), so a 12 MP photo costs a few milliseconds.
    """
    try:
        # The loader's formats and ceilings: no other decoder (EPS would run Ghostscript) and no huge blank image
        # declared by a small file (a 7 kB TIFF of 225 MP took 1 GB here, though the loader refuses it).
        with Image.open(io.BytesIO(data), formats=analyzer.loading._PIL_FORMATS) as im:
            pixels = im.width * im.height
            if pixels > analyzer.loading.MAX_HEADER_PIXELS or (
                    pixels > analyzer.loading.MAX_WHOLE_DECODE_PIXELS and not analyzer.loading.decoded_reduced(im)):
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


def box_outline(box: tuple[float, float, float, float]) -> np.ndarray:
    """The outline (4, 2) of an ``(x, y, w, h)`` pixel box, edges half a pixel outside its first/last pixels."""
    x, y, w, h = (float(v) for v in box)
    return np.array([[x - 0.5, y - 0.5], [x + w - 0.5, y - 0.5], [x + w - 0.5, y + h - 0.5], [x - 0.5, y + h - 0.5]])


def region_colours(n: int) -> list[tuple[str, tuple[int, int, int]]]:
    """``n`` outline colours in the order :func:`draw_regions` uses them: (Streamlit colour name, RGB).

    The names are those of Streamlit's coloured text (``:orange[…]``), so a caption can name each region in
    the colour of its outline.
    """
    return [REGION_COLOURS[i % len(REGION_COLOURS)] for i in range(n)]


def draw_regions(rgb: np.ndarray, outlines: Mapping[str, np.ndarray], *, scale: float, labels: bool = False,
                 crop: float | None = None) -> np.ndarray:
    """A copy of a (thumbnail) picture with named region outlines drawn on it (``cv2.polylines``).

    Parameters
    ----------
    rgb : (H, W, 3) uint8 or float
        The picture, e.g. a thumbnail of the photo.
    outlines : mapping name -> (N, 2) array
        Polygons in pixels of the full photo (x, y), as ``Measurement.region_outlines`` gives them; drawn in
        the colours of :func:`region_colours`, in order.
    scale : float
        Picture pixels per photo pixel (thumbnail width / photo width).
    labels : bool
        Also write each region's name at its centre (legible only when the regions are large in the picture).
    crop : float, optional
        Cut the picture down to the regions' bounding box, widened by this fraction of its size on each side
        (e.g. 0.3: the face of a portrait, not the whole photo).
    """
    out = np.ascontiguousarray(to_uint8(rgb)[..., :3]).copy()
    thick = max(1, int(round(max(out.shape[:2]) / 320)))
    font = 0.35 * thick + 0.05
    drawn = []
    for (name, poly), (_, colour) in zip(outlines.items(), region_colours(len(outlines))):
        p = (np.asarray(poly, float).reshape(-1, 2) + 0.5) * float(scale) - 0.5
        if not np.all(np.isfinite(p)) or len(p) < 2:
            continue
        drawn.append(p)
        pts = np.round(p * 16).astype(np.int32).reshape(-1, 1, 2)  # 4 fractional bits: sub-pixel outlines
        cv2.polylines(out, [pts], True, colour, thick, cv2.LINE_AA, shift=4)
        if labels and name:
            (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            cx, cy = p.mean(0)
            org = (int(np.clip(cx - tw / 2, 0, max(out.shape[1] - tw, 0))),
                   int(np.clip(cy + th / 2, th, out.shape[0] - 1)))
            cv2.putText(out, name, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(out, name, org, cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA)
    if crop is not None and drawn:
        pts = np.concatenate(drawn)
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        mx, my = crop * (x1 - x0), crop * (y1 - y0)
        H, W = out.shape[:2]
        c0, c1 = int(max(0, np.floor(x0 - mx))), int(min(W, np.ceil(x1 + mx) + 1))
        r0, r1 = int(max(0, np.floor(y0 - my))), int(min(H, np.ceil(y1 + my) + 1))
        if c1 > c0 and r1 > r0:
            out = np.ascontiguousarray(out[r0:r1, c0:c1])
    return out


def outside_warp(aligned: np.ndarray, keep: np.ndarray | None = None, *, seam_px: int = 2) -> np.ndarray:
    """Pixels of an aligned (warped) photo that lie outside the original photo: the black wedges of the warp.

    They are the pixels that are exactly black in every channel and connected to the picture's border (a
    black patch inside the photo is kept), widened by ``seam_px`` for the interpolated edge; pixels in
    ``keep`` (e.g. the measured overlap) are never included.

    Returns
    -------
    (H, W) bool
    """
    a = np.asarray(aligned)
    zero = (a.max(axis=-1) if a.ndim == 3 else a) <= 0
    out = np.zeros(zero.shape, bool)
    if zero.any():
        n, labels = cv2.connectedComponents(zero.astype(np.uint8), connectivity=4)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        edge = edge[edge > 0]
        out = np.isin(labels, edge)
        if seam_px > 0 and out.any():
            k = np.ones((2 * seam_px + 1,) * 2, np.uint8)
            out = cv2.dilate(out.astype(np.uint8), k).astype(bool)
    if keep is not None:
        out &= ~np.asarray(keep, bool)
    return out


def fill(rgb: np.ndarray, where: np.ndarray, colour=NEUTRAL_GREY) -> np.ndarray:
    """A ``uint8`` copy of the picture with the pixels ``where`` set to ``colour`` (RGB, 0–255)."""
    out = to_uint8(rgb).copy()
    out[np.asarray(where, bool)] = np.asarray(colour, np.uint8)
    return out
