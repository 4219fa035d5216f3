"""Face detection and the standard face regions (forehead, cheeks, chin, temples).

For a full-face photo the face is found with OpenCV's Haar cascades (the ones shipped in
``cv2.data.haarcascades``; no download), the eyes inside it give the roll of the head, and each standard
region is a polygon placed relative to the eye line and the face's width. For close-ups (no whole face in
view) the practitioner draws the region by hand: :func:`region_from_box`.

Left and right are the **patient's**: in a frontal photo the patient's left cheek is on the image's right.

Coordinates are image pixels ``(x, y)``, x to the right, y down, pixel centres on integers (OpenCV's
convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import ImageError, OptionError

__all__ = ["REGION_NAMES", "FaceBox", "Region", "find_face", "face_regions", "region_from_box"]

#: Standard regions, patient's left/right.
REGION_NAMES = ("forehead", "left cheek", "right cheek", "chin", "left temple", "right temple")

#: Region outlines in a face frame: origin at the midpoint between the eyes, u along the eye line towards
#: the image's right (the patient's left), v perpendicular to it towards the chin; unit = face-box width.
#: Proportions from the usual frontal face: eyes at u = ±0.22, nose tip v ≈ 0.25, mouth v ≈ 0.45,
#: chin v ≈ 0.78, brows v ≈ -0.1, face edges u ≈ ±0.48. Patient's-right outlines are the mirror images.
_LEFT_CHEEK = ((0.16, 0.13), (0.42, 0.13), (0.40, 0.40), (0.30, 0.47), (0.16, 0.38))
_LEFT_TEMPLE = ((0.36, -0.30), (0.50, -0.30), (0.50, -0.04), (0.36, -0.04))
_FRAME: dict[str, tuple[tuple[float, float], ...]] = {
    "forehead": ((-0.28, -0.42), (0.28, -0.42), (0.28, -0.16), (-0.28, -0.16)),
    "left cheek": _LEFT_CHEEK,
    "right cheek": tuple((-u, v) for u, v in reversed(_LEFT_CHEEK)),
    "chin": ((-0.15, 0.60), (0.15, 0.60), (0.15, 0.76), (-0.15, 0.76)),
    "left temple": _LEFT_TEMPLE,
    "right temple": tuple((-u, v) for u, v in reversed(_LEFT_TEMPLE)),
}
#: Where the eye midpoint sits in a Haar face box when the eyes are not found (fractions of w, h).
_EYES_IN_BOX = (0.5, 0.38)

_CASCADES: dict[str, cv2.CascadeClassifier] = {}


def _cascade(name: str) -> cv2.CascadeClassifier:
    if name not in _CASCADES:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if c.empty():
            raise ImageError(f"OpenCV's {name} is missing; reinstall opencv-python-headless 4.x.")
        _CASCADES[name] = c
    return _CASCADES[name]


@dataclass(frozen=True)
class FaceBox:
    """A face found in a photo.

    Attributes
    ----------
    x, y, w, h : float
        Haar face box in image pixels (top-left corner, width, height).
    roll_deg : float
        Angle of the eye line from the image's x axis, degrees, positive = the image-right eye lower
        (clockwise on screen); 0 when the eyes were not found.
    eyes : ndarray (2, 2) or None
        Eye centres (x, y): the image-left one (patient's right eye) first; None when not found.
    """

    x: float
    y: float
    w: float
    h: float
    roll_deg: float = 0.0
    eyes: np.ndarray | None = None

    @property
    def eye_centre(self) -> np.ndarray:
        """Midpoint between the eyes (estimated from the box when they were not found)."""
        if self.eyes is not None:
            return np.asarray(self.eyes, float).mean(0)
        return np.array([self.x + _EYES_IN_BOX[0] * self.w, self.y + _EYES_IN_BOX[1] * self.h])

    def to_dict(self) -> dict:
        return {"x": float(self.x), "y": float(self.y), "w": float(self.w), "h": float(self.h),
                "roll_deg": float(self.roll_deg),
                "eyes": None if self.eyes is None else np.asarray(self.eyes, float).tolist()}


@dataclass(frozen=True)
class Region:
    """A named area of the photo.

    Attributes
    ----------
    name : str
    polygon : ndarray (N, 2), float
        Outline in image pixels (x, y).
    bbox : (x, y, w, h) of int
        Smallest pixel rectangle holding the outline.
    """

    name: str
    polygon: np.ndarray
    bbox: tuple[int, int, int, int] = field(init=False)

    def __post_init__(self):
        p = np.asarray(self.polygon, dtype=np.float64).reshape(-1, 2)
        object.__setattr__(self, "polygon", p)
        x0, y0 = np.floor(p.min(0) + 0.5).astype(int)
        x1, y1 = np.ceil(p.max(0) - 0.5).astype(int)
        object.__setattr__(self, "bbox", (int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)))

    @property
    def area_px(self) -> float:
        """Area of the outline in px²."""
        return float(abs(cv2.contourArea(self.polygon.astype(np.float32))))

    @property
    def centroid(self) -> np.ndarray:
        m = cv2.moments(self.polygon.astype(np.float32))
        if m["m00"] == 0:
            return self.polygon.mean(0)
        return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])

    def mask(self, shape) -> np.ndarray:
        """Boolean mask (H, W) of the pixels whose centres lie inside the outline."""
        return _polygon_mask(self.polygon, shape)

    def scaled(self, factor: float) -> "Region":
        """The same region on a copy of the photo resized by ``factor`` (pixel centres kept aligned)."""
        return Region(self.name, (self.polygon + 0.5) * factor - 0.5)

    def to_dict(self) -> dict:
        return {"name": self.name, "polygon": self.polygon.tolist(), "bbox": list(self.bbox)}


def _polygon_mask(poly: np.ndarray, shape) -> np.ndarray:
    """Scan-line fill, even-odd rule, half-open (a centre on a left/top edge is in, on a right/bottom edge out)."""
    H, W = int(shape[0]), int(shape[1])
    out = np.zeros((H, W), bool)
    p = np.asarray(poly, np.float64)
    q = np.roll(p, -1, axis=0)
    y0 = max(0, int(math.ceil(p[:, 1].min())))
    y1 = min(H - 1, int(math.ceil(p[:, 1].max())) - 1)
    for y in range(y0, y1 + 1):
        crosses = ((p[:, 1] <= y) & (y < q[:, 1])) | ((q[:, 1] <= y) & (y < p[:, 1]))
        if not crosses.any():
            continue
        a, b = p[crosses], q[crosses]
        xs = np.sort(a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1]))
        for xa, xb in zip(xs[0::2], xs[1::2]):
            c0, c1 = max(0, int(math.ceil(xa))), min(W, int(math.ceil(xb)))
            if c1 > c0:
                out[y, c0:c1] = True
    return out


def region_from_box(name: str, x: float, y: float, w: float, h: float) -> Region:
    """A rectangular region the practitioner drew by hand.

    Parameters
    ----------
    name : str
        Any label, e.g. one of :data:`REGION_NAMES`.
    x, y, w, h : float
        Top-left corner and size in image pixels; the region covers pixel centres ``x .. x+w-1``.

    Examples
    --------
    >>> region_from_box("left cheek", 10, 20, 30, 40).bbox
    (10, 20, 30, 40)
    """
    vals = [float(v) for v in (x, y, w, h)]
    if not all(math.isfinite(v) for v in vals) or vals[2] <= 0 or vals[3] <= 0:
        raise OptionError(f"region box {tuple(vals)} is impossible; give x, y and a positive width and height in px.")
    x, y, w, h = vals
    # edges half a pixel outside the first and last pixel centres, so mask() covers exactly w × h pixels
    poly = np.array([[x - 0.5, y - 0.5], [x + w - 0.5, y - 0.5], [x + w - 0.5, y + h - 0.5], [x - 0.5, y + h - 0.5]])
    return Region(str(name), poly)


def _gray_u8(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim == 3 and a.shape[2] == 3:
        g = cv2.cvtColor(a if a.dtype in (np.uint8, np.float32) else a.astype(np.float32), cv2.COLOR_RGB2GRAY)
    elif a.ndim == 2:
        g = a
    else:
        raise ImageError(f"expected an RGB photo of shape (H, W, 3), got shape {a.shape}; "
                         "load it with analyzer.load_image first.")
    if g.dtype != np.uint8:
        g = np.clip(np.asarray(g, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return g


def _find_eyes(gray: np.ndarray, box) -> np.ndarray | None:
    """The two eye centres inside a face box (small-image coordinates), image-left first, or None."""
    x, y, w, h = box
    y0, y1 = int(y + 0.15 * h), int(y + 0.60 * h)
    roi = gray[y0:y1, int(x):int(x + w)]
    if roi.size == 0:
        return None
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        roi, scaleFactor=1.1, minNeighbors=4, minSize=(max(5, int(0.12 * w)),) * 2,
        maxSize=(int(0.45 * w),) * 2)
    if len(found) < 2:
        return None
    cand = [(ex + ew / 2 + int(x), ey + eh / 2 + y0, ew) for ex, ey, ew, eh in found]
    best, best_cost = None, math.inf
    for a in cand:
        for b in cand:
            if a[0] >= b[0]:
                continue
            dx, dy = b[0] - a[0], b[1] - a[1]
            if not (0.25 * w <= dx <= 0.65 * w) or abs(dy) > 0.45 * dx or max(a[2], b[2]) > 1.6 * min(a[2], b[2]):
                continue
            # prefer pairs placed like eyes: symmetric about the box centre, at the usual height
            mid = ((a[0] + b[0]) / 2 - (x + 0.5 * w), (a[1] + b[1]) / 2 - (y + _EYES_IN_BOX[1] * h))
            cost = math.hypot(*mid) / w + abs(dx / w - 0.44)
            if cost < best_cost:
                best, best_cost = np.array([[a[0], a[1]], [b[0], b[1]]], float), cost
    return best


def find_face(rgb, *, max_side: int = 800, min_face_fraction: float = 0.12) -> FaceBox | None:
    """Find the largest frontal face in a photo.

    Parameters
    ----------
    rgb : ndarray (H, W, 3) float32 in [0, 1] (or uint8), sRGB-encoded; a gray (H, W) array is accepted
    max_side : int, optional
        Detection runs on a copy whose long side is at most this many pixels (speed); results are in the
        full photo's pixels.
    min_face_fraction : float, optional
        Smallest face searched, as a fraction of the photo's short side (fewer false faces in close-ups).

    Returns
    -------
    FaceBox or None
        None when no face is found (e.g. a close-up of skin).

    Notes
    -----
    ``haarcascade_frontalface_default.xml`` (Viola & Jones) on the histogram-equalised gray image,
    ``minNeighbors=5``; then ``haarcascade_eye.xml`` in the upper part of the face box. The eye pair sets
    the roll; Haar cascades find faces rolled up to about ±15°.

    References
    ----------
    P. Viola, M. Jones, "Rapid object detection using a boosted cascade of simple features", CVPR 2001.
    """
    gray = _gray_u8(rgb)
    H, W = gray.shape
    scale = min(1.0, float(max_side) / max(H, W))
    small = cv2.resize(gray, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else gray
    sy, sx = small.shape[0] / H, small.shape[1] / W
    small = cv2.equalizeHist(small)
    min_size = max(24, int(min_face_fraction * min(small.shape)))
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3]).astype(float)
    eyes = _find_eyes(small, (x, y, w, h))
    roll = 0.0
    if eyes is not None:
        roll = math.degrees(math.atan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))
        eyes = np.column_stack([(eyes[:, 0] + 0.5) / sx - 0.5, (eyes[:, 1] + 0.5) / sy - 0.5])
    return FaceBox(x=(x + 0.5) / sx - 0.5, y=(y + 0.5) / sy - 0.5, w=w / sx, h=h / sy, roll_deg=roll, eyes=eyes)


def _clip_to_image(poly: np.ndarray, shape) -> np.ndarray | None:
    H, W = shape[:2]
    rect = np.array([[-0.5, -0.5], [W - 0.5, -0.5], [W - 0.5, H - 0.5], [-0.5, H - 0.5]], np.float32)
    area, inter = cv2.intersectConvexConvex(poly.astype(np.float32), rect)
    if inter is None or area < 1.0:
        return None
    return inter.reshape(-1, 2).astype(np.float64)


def face_regions(rgb, *, face: FaceBox | None = None) -> dict[str, Region] | None:
    """The standard face regions of a full-face photo.

    Parameters
    ----------
    rgb : ndarray (H, W, 3) float32 in [0, 1] (or uint8), sRGB-encoded
    face : FaceBox, optional
        A face already found (by :func:`find_face` or set by hand); found here when None.

    Returns
    -------
    dict of str to Region, or None
        Keys from :data:`REGION_NAMES` (patient's left/right); a region lying wholly outside the photo is
        left out, one partly outside is clipped to it. None when no face is found.

    Notes
    -----
    Each region is a fixed polygon in a face frame — origin at the midpoint between the eyes, axes along and
    across the eye line (so the regions follow the head's roll), unit the face-box width — mapped to image
    pixels. The proportions are those of an average frontal adult face; draw a region by hand
    (:func:`region_from_box`) when a face differs or is not frontal.
    """
    a = np.asarray(rgb)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ImageError(f"expected an RGB photo of shape (H, W, 3), got shape {a.shape}; "
                         "load it with analyzer.load_image first.")
    if face is None:
        face = find_face(a)
        if face is None:
            return None
    r = math.radians(face.roll_deg)
    ex, ey = np.array([math.cos(r), math.sin(r)]), np.array([-math.sin(r), math.cos(r)])
    origin, unit = face.eye_centre, float(face.w)
    out: dict[str, Region] = {}
    for name in REGION_NAMES:
        uv = np.array(_FRAME[name], float)
        poly = origin + unit * (uv[:, :1] * ex + uv[:, 1:] * ey)
        clipped = _clip_to_image(poly, a.shape)
        if clipped is not None:
            out[name] = Region(name, clipped)
    return out
