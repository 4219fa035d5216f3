"""Calibration card: make it (raster and PDF) and find it in a photo (scale, tilt, white balance).

The card is a 50 × 30 mm piece of paper that the practitioner prints at 100 % and lays beside the treated
area. It carries four ArUco markers (OpenCV dictionary ``DICT_4X4_50``, ids 0–3) at known positions, a
neutral step wedge from paper white to dark grey, and a millimetre ruler for a human check. Every position is
in :data:`CARD_LAYOUT`, in millimetres from the card's top-left corner (x to the right, y down).

Finding the card gives

* the **scale** (px/mm) at the card's centre from a homography card-mm → image-px fitted on all detected
  marker corners, so a card seen at an angle (perspective) is handled;
* the **tilt** of the card against the image plane, from the anisotropy of that homography;
* **white balance** gains and the **exposure** (linear luminance of paper white), from the step wedge.

Pixel convention: pixel ``(row i, column j)`` has its centre at image coordinates ``(x=j, y=i)`` (OpenCV's
convention); in :func:`card_image` that pixel covers card millimetres ``[j/s, (j+1)/s)`` with ``s`` px/mm.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colour import encode_srgb as _linear_to_srgb
from .colour import linearise as _srgb_to_linear
from .errors import ImageError, OptionError

__all__ = [
    "CardLayout", "CARD_LAYOUT", "CardDetection",
    "card_image", "write_card_pdf", "detect_card", "apply_white_balance", "tone_slope",
    "contrast_transfer",
]

#: OpenCV ArUco dictionary of the card's markers.
ARUCO_DICTIONARY = cv2.aruco.DICT_4X4_50

#: Rec. 709 / sRGB luminance weights of linear R, G, B (the card's patches and the skin are read with the same ones).
LUMA = np.array([0.2126, 0.7152, 0.0722])


def _marker_corners(x0: float, y0: float, size: float) -> tuple[tuple[float, float], ...]:
    # ArUco's corner order: clockwise from the marker's top-left (markers are printed upright).
    return ((x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size))


@dataclass(frozen=True)
class CardLayout:
    """Geometry of the calibration card, all in mm from its top-left corner (x right, y down).

    Attributes
    ----------
    size_mm : (width, height) of the card.
    marker_size_mm : side of each ArUco marker, black border included.
    markers : ``{id: ((x, y) × 4)}`` outer corners of each marker, in ArUco's order (TL, TR, BR, BL).
    patches : step wedge, white first: ``(name, (x, y, w, h) mm, nominal sRGB value 0–255,
        nominal reflectance relative to the paper)``. Patch 0 is bare paper.
    ruler : ``(x_start, x_end, baseline_y)`` of the mm ruler; ticks every 1 mm, longer every 5 and 10 mm.
    label : text printed on the card, and ``(x, y, w, h)`` box it is fitted into.
    outline_mm : width of the grey cut line drawn just inside the card's edge.
    """

    size_mm: tuple[float, float]
    marker_size_mm: float
    markers: dict[int, tuple[tuple[float, float], ...]]
    patches: tuple[tuple[str, tuple[float, float, float, float], int, float], ...]
    ruler: tuple[float, float, float]
    label: str
    label_box: tuple[float, float, float, float]
    outline_mm: float = 0.15

    @property
    def centre_mm(self) -> tuple[float, float]:
        return (self.size_mm[0] / 2.0, self.size_mm[1] / 2.0)

    @property
    def outline(self) -> np.ndarray:
        """The card's outline (4, 2) in mm: TL, TR, BR, BL."""
        w, h = self.size_mm
        return np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)


def _wedge(values: tuple[int, ...], x0: float, y0: float, w: float, h: float):
    lin = _srgb_to_linear(np.array(values) / 255.0)
    return tuple(
        (f"patch{i}", (x0 + i * w, y0, w, h), int(v), round(float(r), 4))
        for i, (v, r) in enumerate(zip(values, lin))
    )


#: The one definition of the card (version 1). Markers are 8 mm (6 × 6 cells of 1.33 mm) with ≥ 2 mm of
#: white around them; the wedge sits between the two top markers, the ruler in the middle band, the label
#: between the two bottom markers. Nominal sRGB values 255, 200, 150, 100, 60 are 100 %, 58 %, 31 %, 13 % and
#: 4.5 % reflectance of paper white (the actual print depends on the printer; the white-balance fit only
#: needs the patches to be neutral grey, not their exact values).
CARD_LAYOUT = CardLayout(
    size_mm=(50.0, 30.0),
    marker_size_mm=8.0,
    markers={
        0: _marker_corners(2.0, 2.0, 8.0),
        1: _marker_corners(40.0, 2.0, 8.0),
        2: _marker_corners(40.0, 20.0, 8.0),
        3: _marker_corners(2.0, 20.0, 8.0),
    },
    patches=_wedge((255, 200, 150, 100, 60), 12.5, 2.0, 5.0, 8.0),
    ruler=(5.0, 45.0, 16.0),
    label="Relief card v1 - print at 100 %",
    label_box=(12.5, 21.0, 25.0, 6.0),
)


# --------------------------------------------------------------------------------------------------- making


def card_image(*, px_per_mm: float = 24.0) -> np.ndarray:
    """Raster of the calibration card at an exact scale.

    Parameters
    ----------
    px_per_mm : float, optional
        Resolution of the raster in pixels per mm (24 px/mm = 610 dpi). Edges fall on whole pixels when
        ``px_per_mm * 4 / 3`` is an integer (as at 24); otherwise they are rounded to the nearest pixel.

    Returns
    -------
    ndarray, uint8, shape (round(30 * px_per_mm), round(50 * px_per_mm), 3)
        RGB image of the card, pixel ``(i, j)`` covering card mm ``[j, j+1) / px_per_mm`` across.

    Examples
    --------
    >>> card_image(px_per_mm=10).shape
    (300, 500, 3)
    """
    s = float(px_per_mm)
    if not math.isfinite(s) or s < 4:
        raise OptionError(f"px_per_mm={px_per_mm} is too coarse to draw the card; use at least 4 px/mm.")
    lay = CARD_LAYOUT
    W, H = round(lay.size_mm[0] * s), round(lay.size_mm[1] * s)
    img = np.full((H, W), 255, np.uint8)

    def px(v: float) -> int:
        return int(round(v * s))

    def fill(x0, y0, x1, y1, value):
        img[px(y0):max(px(y1), px(y0) + 1), px(x0):max(px(x1), px(x0) + 1)] = value

    # markers: one filled square per cell so cell edges sit at their exact mm positions
    dic = cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY)
    for mid, corners in lay.markers.items():
        bits = cv2.aruco.generateImageMarker(dic, mid, 6, borderBits=1)
        (x0, y0), cell = corners[0], lay.marker_size_mm / 6.0
        for i in range(6):
            for j in range(6):
                fill(x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell, bits[i, j])

    # step wedge with a thin grey frame
    for _, (x, y, w, h), value, _ in lay.patches:
        fill(x, y, x + w, y + h, value)
    xs = [p[1][0] for p in lay.patches]
    wx0, wy0 = min(xs), lay.patches[0][1][1]
    wx1, wy1 = max(p[1][0] + p[1][2] for p in lay.patches), wy0 + lay.patches[0][1][3]
    t = 0.1
    for x0, y0, x1, y1 in ((wx0 - t, wy0 - t, wx1 + t, wy0), (wx0 - t, wy1, wx1 + t, wy1 + t),
                           (wx0 - t, wy0, wx0, wy1), (wx1, wy0, wx1 + t, wy1)):
        fill(x0, y0, x1, y1, 128)

    # ruler: baseline, ticks every mm (longer every 5 and 10 mm), numbers every 10 mm
    rx0, rx1, ry = lay.ruler
    lw = 0.12
    fill(rx0 - lw / 2, ry, rx1 + lw / 2, ry + lw, 0)
    for k in range(int(round(rx1 - rx0)) + 1):
        length = 2.8 if k % 10 == 0 else 2.0 if k % 5 == 0 else 1.2
        x = rx0 + k
        fill(x - lw / 2, ry - length, x + lw / 2, ry, 0)

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    num_font = ImageFont.load_default(size=max(6, 1.3 * s))
    for k in range(0, int(round(rx1 - rx0)) + 1, 10):
        draw.text(((rx0 + k) * s, (ry + 0.4) * s), str(k), fill=0, font=num_font, anchor="mt")
    draw.text(((rx1 + 1.4) * s, (ry + 0.4) * s), "mm", fill=0, font=num_font, anchor="lt")

    # label, fitted into its box
    bx, by, bw, bh = lay.label_box
    size = max(6.0, 1.7 * s)
    font = ImageFont.load_default(size=size)
    while size > 6 and font.getlength(lay.label) > bw * s:
        size *= 0.95
        font = ImageFont.load_default(size=size)
    draw.text(((bx + bw / 2) * s, (by + bh * 0.3) * s), lay.label, fill=0, font=font, anchor="mm")
    small = ImageFont.load_default(size=max(6.0, size * 0.8))
    draw.text(((bx + bw / 2) * s, (by + bh * 0.72) * s),
              f"{lay.size_mm[0]:g} x {lay.size_mm[1]:g} mm  |  ArUco 4x4_50", fill=0, font=small, anchor="mm")
    img = np.asarray(pil).copy()

    # grey cut line just inside the card's edge
    o = max(1, px(lay.outline_mm))
    img[:o, :] = img[-o:, :] = 128
    img[:, :o] = img[:, -o:] = 128
    return np.repeat(img[:, :, None], 3, axis=2)


#: A4 page the PDF card is centred on, in mm.
A4_MM = (210.0, 297.0)


def write_card_pdf(path, *, px_per_mm: float = 24.0) -> Path:
    """Write the calibration card, at exact physical size, centred on an A4 page.

    Parameters
    ----------
    path : str or Path
        Output file (``.pdf``).
    px_per_mm : float, optional
        Raster resolution of the page; the PDF's resolution is ``px_per_mm * 25.4`` dpi (24 px/mm = 609.6 dpi).

    Returns
    -------
    Path
        The written file.

    Notes
    -----
    The page is a full A4 raster (210 × 297 mm, MediaBox 595.3 × 841.9 pt) so printers have no reason to
    "fit to page": the card is 50 × 30 mm only when printed at 100 % / "actual size". Its grey outline is the
    cut line; crop marks 2 mm outside the corners help cutting, and a line of text above the card says how
    to check the print with a ruler. The page is stored as one grayscale JPEG (quality 95) inside the PDF.
    """
    s = float(px_per_mm)
    card = card_image(px_per_mm=s)[:, :, 0]
    W, H = round(A4_MM[0] * s), round(A4_MM[1] * s)
    page = np.full((H, W), 255, np.uint8)
    ch, cw = card.shape
    top, left = (H - ch) // 2, (W - cw) // 2
    page[top:top + ch, left:left + cw] = card

    # crop marks: 3 mm lines starting 2 mm outside each corner, along the card's edges
    lw, gap, ln = max(1, round(0.1 * s)), round(2 * s), round(3 * s)
    for cy in (top, top + ch):
        for cx in (left, left + cw):
            sx = -1 if cx == left else 1
            sy = -1 if cy == top else 1
            xa = cx + sx * gap
            xb = cx + sx * (gap + ln)
            page[cy - lw // 2:cy - lw // 2 + lw, min(xa, xb):max(xa, xb)] = 0
            ya = cy + sy * gap
            yb = cy + sy * (gap + ln)
            page[min(ya, yb):max(ya, yb), cx - lw // 2:cx - lw // 2 + lw] = 0

    pil = Image.fromarray(page)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=3.2 * s)
    lines = ("Relief calibration card v1 - print at 100 % (\"actual size\", never \"fit to page\").",
             f"Check: the card measures {CARD_LAYOUT.size_mm[0]:g} x {CARD_LAYOUT.size_mm[1]:g} mm "
             "and the ruler's 40 mm span is 40 mm.",
             "Cut along the grey outline; keep the card flat, clean and dry.")
    for i, text in enumerate(lines):
        draw.text((W / 2, top - (30 - 6 * i) * s), text, fill=0, font=font, anchor="mm")
    path = Path(path)
    pil.save(path, "PDF", resolution=s * 25.4, quality=95)
    return path


# -------------------------------------------------------------------------------------------------- finding


@dataclass
class CardDetection:
    """The calibration card found in a photo.

    Attributes
    ----------
    px_per_mm : float
        Isotropic scale at the card's centre, ``sqrt(|det J|)`` of the homography's Jacobian there.
    tilt_deg : float
        Tilt of the card against the image plane, ``arccos(s_min / s_max)`` of that Jacobian's singular
        values (0 = card square to the camera).
    homography : ndarray (3, 3)
        Card mm -> image px (x, y), in the coordinates of the photo given to :func:`detect_card`.
    corners_px : ndarray (4, 2)
        The card's outline in the image: TL, TR, BR, BL of the printed card.
    marker_ids : list of int
        Markers used for the fit.
    white_balance_gains : (r, g, b)
        Gains on **linear** RGB that make the grey wedge neutral, normalised so green = 1.
    white_linear : float
        Exposure: linear luminance of the paper-white patch after white balance (1 = full scale).
    scale_axes_px_per_mm : (float, float)
        Scale along the card's most and least stretched directions at its centre (singular values of J).
    reprojection_error_px : float
        RMS distance between detected marker corners and those predicted by the homography.
    patches_linear : ndarray (n_patches, 3)
        Mean linear RGB of each wedge patch (inner 60 %), before white balance.
    image_shape : (H, W) of the photo searched.
    tone_slope : float
        How the camera rendered the wedge's steps: the slope of log luminance (white-balanced) against log of
        the patches' nominal reflectance over the three mid-grey steps (:func:`tone_slope`); NaN when one of
        them is clipped or dark. Only its *ratio* between two photos of one card means something (the print's
        own contrast cancels): a follow-up whose slope is 3 % higher was processed with about 3 % more contrast
        in log light, and its roughness index reads about that much higher for that alone.
    seconds : float
        Time the detection took.
    warnings : list of str
        Problems that did not stop the detection (clipped white, few markers, ...).
    """

    px_per_mm: float
    tilt_deg: float
    homography: np.ndarray
    corners_px: np.ndarray
    marker_ids: list[int]
    white_balance_gains: tuple[float, float, float]
    white_linear: float
    reprojection_error_px: float
    patches_linear: np.ndarray
    image_shape: tuple[int, int]
    scale_axes_px_per_mm: tuple[float, float] = (float("nan"), float("nan"))
    seconds: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    tone_slope: float = float("nan")

    def to_image(self, points_mm) -> np.ndarray:
        """Map card points (N, 2) in mm to image pixels (N, 2)."""
        pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.homography).reshape(-1, 2)

    def mask(self, shape, *, margin_mm: float = 1.0) -> np.ndarray:
        """Boolean mask of the card (grown by ``margin_mm`` on every side) for an image of ``shape``.

        ``shape`` may differ from the searched photo's (e.g. a resampled analysis copy); the outline is
        scaled to it.
        """
        h, w = int(shape[0]), int(shape[1])
        cw, ch = CARD_LAYOUT.size_mm
        m = float(margin_mm)
        outline = np.array([[-m, -m], [cw + m, -m], [cw + m, ch + m], [-m, ch + m]])
        pts = self.to_image(outline)
        pts[:, 0] = (pts[:, 0] + 0.5) * w / self.image_shape[1] - 0.5
        pts[:, 1] = (pts[:, 1] + 0.5) * h / self.image_shape[0] - 0.5
        out = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(out, np.round(pts * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
        return out.astype(bool)

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""
        return {
            "px_per_mm": float(self.px_per_mm),
            "tilt_deg": float(self.tilt_deg),
            "scale_axes_px_per_mm": [float(v) for v in self.scale_axes_px_per_mm],
            "homography": np.asarray(self.homography, float).tolist(),
            "corners_px": np.asarray(self.corners_px, float).tolist(),
            "marker_ids": [int(i) for i in self.marker_ids],
            "white_balance_gains": [float(g) for g in self.white_balance_gains],
            "white_linear": float(self.white_linear),
            "reprojection_error_px": float(self.reprojection_error_px),
            "patches_linear": np.asarray(self.patches_linear, float).tolist(),
            "image_shape": [int(v) for v in self.image_shape],
            "seconds": float(self.seconds),
            "warnings": list(self.warnings),
            "tone_slope": float(self.tone_slope),
        }


#: detect_card searches for the markers on a copy whose long side is at most this (px), then measures each one found
#: again at full resolution.
SEARCH_MAX_SIDE = 1600


def _detector(subpix: bool = True) -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    if subpix:
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY), params)


def _detect(gray: np.ndarray, detector) -> dict[int, np.ndarray]:
    """Card markers in a uint8 gray image: {id: corners (4, 2)}; the largest one wins if an id repeats."""
    corners, ids, _ = detector.detectMarkers(gray)
    found: dict[int, np.ndarray] = {}
    if ids is None:
        return found
    for c, i in zip(corners, ids.ravel()):
        i = int(i)
        if i not in CARD_LAYOUT.markers:
            continue
        c = c.reshape(4, 2).astype(np.float64)
        if i not in found or cv2.arcLength(c.astype(np.float32), True) > cv2.arcLength(
                found[i].astype(np.float32), True):
            found[i] = c
    return found


def _refine_full_res(gray: np.ndarray, low: dict[int, np.ndarray], scale: float, detector) -> dict[int, np.ndarray]:
    """Re-detect each marker at full resolution inside a small window around its low-resolution position."""
    H, W = gray.shape
    out: dict[int, np.ndarray] = {}
    for mid, c_low in low.items():
        c = (c_low + 0.5) / scale - 0.5  # low-res pixel centres -> full-res pixel coordinates
        side = math.sqrt(cv2.contourArea(c.astype(np.float32)))
        pad = 0.4 * side + 8
        x0, y0 = max(0, int(c[:, 0].min() - pad)), max(0, int(c[:, 1].min() - pad))
        x1, y1 = min(W, int(c[:, 0].max() + pad) + 1), min(H, int(c[:, 1].max() + pad) + 1)
        crop = np.ascontiguousarray(gray[y0:y1, x0:x1])
        hit = _detect(crop, detector).get(mid)
        if hit is not None and np.abs(hit + (x0, y0) - c).max() < 0.25 * side:
            out[mid] = hit + (x0, y0)
        else:  # the detector missed it at full resolution: refine the scaled corners in place
            win = max(2, int(round(0.75 / scale)))
            pts = c.astype(np.float32).reshape(-1, 1, 2)
            crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01)
            cv2.cornerSubPix(gray, pts, (win, win), (-1, -1), crit)
            out[mid] = pts.reshape(4, 2).astype(np.float64)
    return out


def _refine_edges(gray: np.ndarray, corners: np.ndarray, *, iterations: int = 3) -> np.ndarray:
    """Re-estimate a marker's 4 outer corners as intersections of lines fitted to its 4 outer edges.

    Along each side, the edge is located on profiles across it as the centroid of the intensity gradient
    (dark inside -> light outside), in a window of ±0.45 cell recentred at every iteration. For a symmetric
    blur this is unbiased, unlike ``cornerSubPix`` on an L-shaped corner, which drifts into the dark square
    by about the blur's width.
    """
    c = np.asarray(corners, np.float64).copy()
    side = np.mean(np.linalg.norm(np.roll(c, -1, axis=0) - c, axis=1))
    cell = side / 6.0
    if cell < 2.0:  # too small to profile; keep what we have
        return c
    # work in linear light on a crop: optical blur mixes light linearly, so a blurred edge is symmetric
    # there, while in the sRGB-encoded image its midpoint shifts into the dark side by a fraction of a pixel
    Hh, Ww = gray.shape
    pad = 2 * cell + 4
    x0, y0 = max(0, int(c[:, 0].min() - pad)), max(0, int(c[:, 1].min() - pad))
    x1, y1 = min(Ww, int(c[:, 0].max() + pad) + 1), min(Hh, int(c[:, 1].max() + pad) + 1)
    gray = _srgb_to_linear(gray[y0:y1, x0:x1])
    c -= (x0, y0)
    r = 0.45 * cell
    steps = np.arange(-r, r + 1e-9, min(0.5, r / 4))
    n_along = int(np.clip(side / 2, 8, 64))
    t = np.linspace(0.12, 0.88, n_along)
    for _ in range(iterations):
        centre = c.mean(0)
        lines = []
        for k in range(4):
            a, b = c[k], c[(k + 1) % 4]
            d = (b - a) / np.linalg.norm(b - a)
            nrm = np.array([-d[1], d[0]])
            if np.dot(nrm, (a + b) / 2 - centre) < 0:
                nrm = -nrm  # outward
            base = a[None, :] + (t * np.linalg.norm(b - a))[:, None] * d[None, :]
            pts = base[:, None, :] + steps[None, :, None] * nrm[None, None, :]
            prof = cv2.remap(gray, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32),
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
            g = np.clip(np.gradient(prof, steps, axis=1), 0, None)
            w = g.sum(1)
            ok = w > 1e-6 * (np.abs(prof).max() + 1e-12)
            if ok.sum() < 4:
                return c + (x0, y0)
            off = (g[ok] * steps[None, :]).sum(1) / w[ok]
            edge = base[ok] + off[:, None] * nrm[None, :]
            mean = edge.mean(0)
            _, _, vt = np.linalg.svd(edge - mean)
            lines.append((mean, vt[0]))
        new = np.empty_like(c)
        for k in range(4):
            (p1, d1), (p2, d2) = lines[k - 1], lines[k]
            A = np.column_stack([d1, -d2])
            if abs(np.linalg.det(A)) < 1e-6:
                return c + (x0, y0)
            s1, _ = np.linalg.solve(A, p2 - p1)
            new[k] = p1 + s1 * d1
        if np.abs(new - c).max() > cell:  # something else in the window; don't trust it
            return c + (x0, y0)
        c = new
    return c + (x0, y0)


def _jacobian(Hm: np.ndarray, u: float, v: float) -> np.ndarray:
    """d(x, y)/d(u, v) of the homography at card point (u, v) mm."""
    x_, y_, w = Hm @ np.array([u, v, 1.0])
    x, y = x_ / w, y_ / w
    return np.array([[Hm[0, 0] - x * Hm[2, 0], Hm[0, 1] - x * Hm[2, 1]],
                     [Hm[1, 0] - y * Hm[2, 0], Hm[1, 1] - y * Hm[2, 1]]]) / w


def _fit(markers: dict[int, np.ndarray]) -> tuple[np.ndarray, float, dict[int, float]]:
    src = np.concatenate([np.array(CARD_LAYOUT.markers[i], np.float64) for i in markers])
    dst = np.concatenate([markers[i] for i in markers])
    Hm, _ = cv2.findHomography(src, dst, 0)
    if Hm is None:
        return None, float("inf"), {}
    pred = cv2.perspectiveTransform(src.reshape(-1, 1, 2), Hm).reshape(-1, 2)
    err = np.linalg.norm(pred - dst, axis=1)
    per = {i: float(np.sqrt(np.mean(err[4 * k:4 * k + 4] ** 2))) for k, i in enumerate(markers)}
    return Hm, float(np.sqrt(np.mean(err ** 2))), per


def _gray(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma of a float RGB photo: float32 clipped to [0, 1], and as uint8 for the marker search."""
    gray_f = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.clip(gray_f, 0.0, 1.0, out=gray_f)
    # To uint8 in OpenCV (round to nearest, ties to even; the clip above because convertScaleAbs takes the absolute
    # value): in a loop this took detect_card from 6.0 to 2.8 ms against numpy's clip-and-cast.
    return gray_f, cv2.convertScaleAbs(gray_f, alpha=255.0)


def _as_float_rgb(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ImageError(f"expected an RGB photo of shape (H, W, 3), got shape {a.shape}; "
                         "load it with analyzer.load_image first.")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return a.astype(np.float32, copy=False)


def _sample_patches(rgb: np.ndarray, Hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean linear RGB, mean encoded RGB and pixel count of the inner 60 % of each wedge patch."""
    H, W = rgb.shape[:2]
    lin, enc, n = [], [], []
    for _, (x, y, w, h), _, _ in CARD_LAYOUT.patches:
        inner = np.array([[x + 0.2 * w, y + 0.2 * h], [x + 0.8 * w, y + 0.2 * h],
                          [x + 0.8 * w, y + 0.8 * h], [x + 0.2 * w, y + 0.8 * h]])
        poly = cv2.perspectiveTransform(inner.reshape(-1, 1, 2), Hm).reshape(-1, 2)
        x0, y0 = np.floor(poly.min(0)).astype(int)
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        if x1 - x0 < 1 or y1 - y0 < 1:
            lin.append([np.nan] * 3), enc.append([np.nan] * 3), n.append(0)
            continue
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(m, np.round((poly - (x0, y0)) * 16).astype(np.int32), 1, shift=4)
        px = rgb[y0:y1, x0:x1][m.astype(bool)]
        if len(px) == 0:
            lin.append([np.nan] * 3), enc.append([np.nan] * 3), n.append(0)
            continue
        lin.append(_srgb_to_linear(px).mean(0))
        enc.append(px.mean(0))
        n.append(len(px))
    return np.array(lin, np.float64), np.array(enc, np.float64), np.array(n)


#: The wedge's steps the tone slope is read on: the mid greys (printed sRGB 200, 150 and 100; reflectance 0.58 to
#: 0.13 of the paper's, the range of skin). The paper white is often clipped, and the darkest step is the one a veil
#: of stray light (flare, haze on the lens) lifts most: 1 % of white lifts it by a fifth.
TONE_STEPS = (1, 2, 3)


def tone_slope(patches_linear, gains=(1.0, 1.0, 1.0), *, usable=None) -> float:
    """Contrast with which a photo rendered the card's grey wedge: the least-squares slope of log luminance
    against log nominal reflectance over the mid-grey steps :data:`TONE_STEPS` (1 for a camera that kept the
    printed steps exactly).

    Parameters
    ----------
    patches_linear : (n_patches, 3) array
        Mean linear RGB of each patch (:attr:`CardDetection.patches_linear`).
    gains : (r, g, b)
        White-balance gains applied first.
    usable : (n_patches,) bool, optional
        Patches that may be used (unclipped, not black); all finite ones by default.

    Returns
    -------
    float
        NaN unless every step of :data:`TONE_STEPS` is usable, so that two photos are always read on the same
        steps. Its absolute value depends on the print; between two photos of one card, a phone's tone curve
        ``v ** p`` on the encoded values moves it by about 0.9 (p − 1) on renders, and the roughness index of
        the skin beside it about as much.
    """
    lin = np.asarray(patches_linear, float) * np.asarray(gains, float).reshape(1, 3)
    y = lin @ LUMA
    nominal = np.array([p[3] for p in CARD_LAYOUT.patches], float)
    ok = np.isfinite(y) & (y > 0) if usable is None else np.asarray(usable, bool) & np.isfinite(y) & (y > 0)
    steps = list(TONE_STEPS)
    if len(y) <= max(steps) or not ok[steps].all():
        return float("nan")
    return float(np.polyfit(np.log(nominal[steps]), np.log(y[steps]), 1)[0])


#: Patches the contrast transfer may use: every channel between these linear values (mean of the patch's inner
#: 60 %): above, the encoded value is within 2 % of clipping (0.98 encoded); below, noise and the black level.
_TRANSFER_RANGE = (0.02, 0.955)
#: Contrast transfers outside this range are not corrections of a tone curve or a veil but something else (glare
#: on the card, a different card, heavy local processing): :func:`contrast_transfer` returns NaN.
TRANSFER_LIMITS = (0.8, 1.25)


def contrast_transfer(baseline: CardDetection, followup: CardDetection, *, at_luminance: float) -> float:
    """How much more log-contrast the follow-up photo has than the baseline at a given brightness, read on the card.

    Both photos show the same printed wedge, so the print's own reflectances cancel: the follow-up's patch
    luminances ``yf`` (white-balanced) are fitted against the baseline's ``yb`` as ``yf = a yb^p + c`` — exposure
    ``a``, a phone's tone curve ``p``, a veil of stray light ``c`` (negative: the veil was in the baseline) — in log
    luminance over the usable steps (three steps: ``c = 0``), and the log–log slope ``p a L^p / (a L^p + c)`` is
    taken at ``L = at_luminance``. A tone curve ``v ** p`` makes it about p at every brightness; a veil makes it
    fall towards the dark steps; an exposure change leaves it at 1. Relief read as log-contrast (the roughness index) is scaled by the
    same factor, so dividing the follow-up's shading by it puts both photos on the baseline's contrast.

    Parameters
    ----------
    baseline, followup : CardDetection
        The card in each photo (:func:`detect_card`).
    at_luminance : float
        Linear luminance (white-balanced, as the card's patches) of the baseline's skin, e.g. its median; clamped
        to the span of the usable steps (no extrapolation).

    Returns
    -------
    float
        The slope (1 = same contrast); NaN when fewer than three steps are usable in both photos (clipped,
        dark or covered), or when it falls outside :data:`TRANSFER_LIMITS`.

    Examples
    --------
    >>> import numpy as np
    >>> nominal = np.array([p[3] for p in CARD_LAYOUT.patches])
    >>> b = CardDetection(1.0, 0.0, np.eye(3), np.zeros((4, 2)), [0], (1.0, 1.0, 1.0), 0.8, 0.1,
    ...                   0.8 * nominal[:, None] * np.ones(3), (10, 10))
    >>> f = CardDetection(1.0, 0.0, np.eye(3), np.zeros((4, 2)), [0], (1.0, 1.0, 1.0), 0.8, 0.1,
    ...                   (0.8 * nominal[:, None] * np.ones(3)) ** 1.05, (10, 10))
    >>> round(contrast_transfer(b, f, at_luminance=0.2), 3)
    1.05
    """
    lo, hi = _TRANSFER_RANGE
    ys = []
    for det in (baseline, followup):
        lin = np.asarray(det.patches_linear, float)
        ok = np.all(np.isfinite(lin) & (lin >= lo) & (lin <= hi), axis=1)
        ys.append((np.where(ok[:, None], lin, np.nan) * np.asarray(det.white_balance_gains, float)) @ LUMA)
    yb, yf = ys
    ok = np.isfinite(yb) & np.isfinite(yf) & (yb > 0) & (yf > 0)
    if ok.sum() < 3 or not (math.isfinite(at_luminance) and at_luminance > 0):
        return float("nan")
    yb, yf = yb[ok], yf[ok]
    at = float(np.clip(at_luminance, yb.min(), yb.max()))
    a, p, c = _tone_and_veil(yb, yf)
    lift = a * at ** p
    slope = p * lift / (lift + c)
    return slope if TRANSFER_LIMITS[0] <= slope <= TRANSFER_LIMITS[1] else float("nan")


def _tone_and_veil(yb: np.ndarray, yf: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit (in log luminance) of ``yf = a * yb ** p + c``: a gain (exposure), a power (tone curve) and
    an offset (a veil of stray light in the follow-up, or in the baseline when negative). Exact for both effects and
    their mix; with three steps, which cannot also pin a veil, ``c = 0``."""
    from scipy.optimize import minimize_scalar

    x, ly = np.log(yb), np.log(yf)

    def line(c):  # gain and power given the veil
        p, log_a = np.polyfit(x, np.log(yf - c), 1)
        return math.exp(log_a), float(p)

    def cost(c):
        a, p = line(c)
        return float(np.sum((np.log(a * yb ** p + c) - ly) ** 2))

    if len(yb) < 4:
        return (*line(0.0), 0.0)
    lo, hi = -2.0 * yf.min(), 0.95 * yf.min()
    c = float(minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}).x)
    return (*line(c), c)


def detect_card(rgb, *, max_side: int = SEARCH_MAX_SIDE, min_markers: int = 2) -> CardDetection | None:
    """Find the calibration card in a photo and measure scale, tilt, white balance and exposure.

    Parameters
    ----------
    rgb : ndarray, float32 (H, W, 3) in [0, 1], sRGB-encoded
        The photo, as :func:`analyzer.loading.load_image` returns it (uint8 is accepted too).
    max_side : int, optional
        The markers are first searched on a copy whose long side is at most this many pixels; each one
        found is then re-detected at full resolution in a small window (sub-pixel corners).
    min_markers : int, optional
        Fewest markers (of 4) needed; 2 suffice for scale, 4 give the best perspective.

    Returns
    -------
    CardDetection or None
        None when fewer than ``min_markers`` card markers are visible.

    Notes
    -----
    Markers are detected by ``cv2.aruco.ArucoDetector`` (sub-pixel refinement on) on the reduced copy, then
    again at full resolution inside a window around each one. Their outer corners are finally re-estimated
    as intersections of straight lines fitted to the four outer edges located in linear light: optical blur
    is linear in light, and in the sRGB-encoded image a blurred black square looks smaller, which shifts
    ``cornerSubPix`` corners inwards by ~0.5 px at a blur of 0.7 px and would fake a tilt of ~3°.

    The homography card-mm -> image-px is fitted by least squares on all corners of the detected markers
    (``cv2.findHomography``); a marker whose corners disagree with the others by more than 3 px + 2 % of its
    size is dropped (while two remain). The scale is ``sqrt(|det J|)`` of the homography's Jacobian ``J`` at
    the card's centre (the geometric mean of the scales along the card's two principal directions, both
    reported in ``scale_axes_px_per_mm``); the tilt is ``arccos(s_min / s_max)`` of ``J``'s singular values.
Because ``arccos`` is steep near 1, a card square to the camera reads 1–2° of tilt from corner noise alone.

    White balance: the mean linear RGB (IEC 61966-2-1) of the inner 60 % of each wedge patch is taken; patches
    clipped (any channel > 0.98 encoded) or too dark (< 0.02 linear) are left out; per-channel gains
    ``g_c = Σ m_c·m_g / Σ m_c²`` (least squares through the origin, which weights the bright patches most)
    make the grey patches neutral with green as the reference (``g_g = 1``), so exposure is not changed.

    Examples
    --------
    >>> detect_card(np.full((400, 600, 3), 0.5, np.float32)) is None
    True
    """
    t0 = time.perf_counter()
    rgb = _as_float_rgb(rgb)
    if min_markers < 2 or min_markers > 4:
        raise OptionError(f"min_markers={min_markers} is impossible; use 2, 3 or 4.")
    H, W = rgb.shape[:2]
    gray_f, gray = _gray(rgb)
    scale = min(1.0, float(max_side) / max(H, W))
    detector = _detector(subpix=True)
    if scale < 1.0:
        small = cv2.resize(gray, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA)
        scale = small.shape[1] / W
        low = _detect(small, _detector(subpix=False))
        if len(low) < min_markers:
            return None
        markers = _refine_full_res(gray, low, scale, detector)
    else:
        markers = _detect(gray, detector)
    if len(markers) < min_markers:
        return None
    markers = {i: _refine_edges(gray_f, c) for i, c in markers.items()}

    Hm, rms, per = _fit(markers)
    while Hm is not None and len(markers) > 2:
        worst = max(per, key=per.get)
        side = math.sqrt(cv2.contourArea(markers[worst].astype(np.float32)))
        if per[worst] <= 3.0 + 0.02 * side:
            break
        markers.pop(worst)
        Hm, rms, per = _fit(markers)
    if Hm is None or len(markers) < min_markers:
        return None

    warnings: list[str] = []
    J = _jacobian(Hm, *CARD_LAYOUT.centre_mm)
    det = float(np.linalg.det(J))
    if det <= 0:  # mirrored or degenerate: not a real view of the card
        return None
    sv = np.linalg.svd(J, compute_uv=False)
    px_per_mm = math.sqrt(det)
    tilt = math.degrees(math.acos(min(1.0, sv[1] / sv[0])))
    corners = cv2.perspectiveTransform(CARD_LAYOUT.outline.reshape(-1, 1, 2), Hm).reshape(4, 2)
    if len(markers) < 4:
        warnings.append(f"only {len(markers)} of 4 card markers visible; perspective is less certain — "
                        "keep the whole card in view and uncovered.")

    lin, enc, n = _sample_patches(rgb, Hm)
    usable = (n > 0) & np.all(enc <= 0.98, axis=1) & np.all(lin >= 0.02, axis=1)
    if n[0] > 0 and np.any(enc[0] > 0.98):
        warnings.append("the card's white patch is clipped; lower the exposure (or the flash) a little.")
    if usable.any():
        m = lin[usable]
        gains = (m * m[:, 1:2]).sum(0) / (m * m).sum(0)
        gains[1] = 1.0
    else:
        gains = np.ones(3)
        warnings.append("no usable grey patch on the card; white balance not corrected — "
                        "light the card evenly without glare.")
    white = float(LUMA @ (lin[0] * gains)) if n[0] > 0 else float("nan")
    if rms > 2.0 + 0.01 * px_per_mm * CARD_LAYOUT.marker_size_mm:
        warnings.append(f"card fit is loose ({rms:.1f} px RMS); the card may be bent — lay it flat.")

    return CardDetection(
        px_per_mm=px_per_mm, tilt_deg=tilt, homography=Hm, corners_px=corners,
        marker_ids=sorted(markers), white_balance_gains=tuple(float(g) for g in gains),
        white_linear=white, reprojection_error_px=rms, patches_linear=lin, image_shape=(H, W),
        scale_axes_px_per_mm=(float(sv[0]), float(sv[1])),
        seconds=time.perf_counter() - t0, warnings=warnings, tone_slope=tone_slope(lin, gains, usable=usable),
    )


def apply_white_balance(rgb, gains) -> np.ndarray:
    """Apply per-channel white-balance gains in linear light.

    Parameters
    ----------
    rgb : ndarray, float32 (H, W, 3) in [0, 1], sRGB-encoded
    gains : (r, g, b)
        Gains on linear RGB, e.g. :attr:`CardDetection.white_balance_gains`.

    Returns
    -------
    ndarray, float32 (H, W, 3) in [0, 1], sRGB-encoded
        Values pushed above 1 by a gain are clipped.
    """
    rgb = _as_float_rgb(rgb)
    g = np.asarray(gains, dtype=np.float32).reshape(3)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise OptionError(f"white-balance gains {tuple(g)} must be three positive numbers, e.g. (1.1, 1.0, 0.9).")
    return _linear_to_srgb(_srgb_to_linear(rgb) * g)
