"""Edits of a *real* photo with a known effect on its relief, for validation without ground truth.

A real photo has no known height map, but some edits are known to leave the relief alone and others are known
to remove it. :mod:`analyzer.validate` uses them on the photos in ``tests/data/real/``:

* :func:`recapture_drift` — what changes between two visits' photos of the same, unchanged skin: exposure, white
  balance, a light gradient across the frame (in linear light), in-plane rotation, zoom, framing, JPEG. The
  relief is unchanged, so the roughness index should stay within the minimal detectable change.
* :func:`add_pigment` — freckles, age spots or redness added in the pigment domain: the photo's linear RGB is
  attenuated by ``exp(-(melanin * MELANIN_OD + haemoglobin * HAEMOGLOBIN_OD))`` (Beer–Lambert, the optical
  densities of :mod:`analyzer.synth`, or the photo's own pigment axes from :func:`axis_with_leak`), which
  multiplies the albedo and leaves the shading alone. The relief is unchanged, so the index should not move.
* :func:`smooth_relief` — a blend toward a Gaussian-smoothed copy of the photo, or the smoothed copy itself:
  relief (and everything else small) is removed, so the index must fall.
* :func:`phone_processing` — what phones, camera modes and apps do differently to the same capture: sharpening,
  local contrast ("HDR" looks), saturation, noise reduction, vignetting, sensor noise. These leave the skin alone
  but some change the shading's contrast at the scale of the relief, which one photo cannot tell from relief:
  measured, so the README can say which settings must stay the same between visits.

All functions take and return sRGB-encoded float32 RGB in ``[0, 1]`` (as :func:`analyzer.load_image` returns)
and are deterministic for a given seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .colour import _C1, _C2, encode_srgb, linearise
from .errors import OptionError
from .synth import HAEMOGLOBIN_OD, MELANIN_OD

__all__ = ["Drift", "recapture_drift", "random_drift", "add_pigment", "axis_with_leak", "smooth_relief",
           "phone_processing", "PROCESSING_KINDS", "to_linear", "to_srgb", "PIGMENT_KINDS"]

PIGMENT_KINDS = ("freckles", "age_spots", "redness")


def to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded ``[0, 1]`` -> linear light (IEC 61966-2-1); out-of-range values are clipped first."""
    return linearise(np.clip(srgb, 0.0, 1.0))


#: Linear light -> sRGB-encoded, clipped to ``[0, 1]`` (the one transfer function of :mod:`analyzer.colour`).
to_srgb = encode_srgb


@dataclass(frozen=True)
class Drift:
    """One visit's capture drift relative to the baseline photo.

    Attributes
    ----------
    exposure : float
        Gain on linear light.
    white_balance : (float, float, float)
        Per-channel gains on linear light.
    gradient : float
        Linear light ramp across the frame along ``gradient_deg``: ``1 ± gradient`` at the two edges.
    gradient_deg : float
        Direction of the gradient, degrees from the +x axis.
    rotation_deg : float
        In-plane rotation of the camera.
    zoom : float
        > 1: the camera is closer (skin appears larger).
    shift : (float, float)
        Framing offset as a fraction of the width and height.
    jpeg_quality : int or None
        Re-encode as JPEG at this quality (None: no re-encoding).
    """

    exposure: float = 1.0
    white_balance: tuple = (1.0, 1.0, 1.0)
    gradient: float = 0.0
    gradient_deg: float = 0.0
    rotation_deg: float = 0.0
    zoom: float = 1.0
    shift: tuple = (0.0, 0.0)
    jpeg_quality: int | None = None


def random_drift(rng: np.random.Generator) -> Drift:
    """A visit's drift, drawn like :func:`analyzer.synth.recapture`'s: exposure x0.7–1.4, white balance ±15 %,
    light gradient up to 0.2, rotation ±5°, zoom ±5 %, framing ±4 %, JPEG quality 80–95."""
    return Drift(
        exposure=float(math.exp(rng.uniform(math.log(0.7), math.log(1.4)))),
        white_balance=tuple(float(v) for v in 1.0 + rng.uniform(-0.15, 0.15, 3)),
        gradient=float(rng.uniform(0.0, 0.2)), gradient_deg=float(rng.uniform(0, 360)),
        rotation_deg=float(rng.uniform(-5, 5)), zoom=float(rng.uniform(0.95, 1.05)),
        shift=tuple(float(v) for v in rng.uniform(-0.04, 0.04, 2)),
        jpeg_quality=int(rng.integers(80, 96)),
    )


def recapture_drift(rgb: np.ndarray, drift: Drift) -> np.ndarray:
    """The photo as a later visit would take it of the same, unchanged skin.

    The geometric part (rotation about the centre, zoom, framing) keeps the output size; the border it would
    reveal is filled by reflection (the edge of the frame, which registration crops away). Photometric drift is
    applied in linear light; the result is optionally JPEG re-encoded.

    Parameters
    ----------
    rgb : (H, W, 3) float32
        sRGB-encoded photo in ``[0, 1]``.
    drift : Drift

    Returns
    -------
    (H, W, 3) float32
    """
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), drift.rotation_deg, drift.zoom)
    m[0, 2] += drift.shift[0] * w
    m[1, 2] += drift.shift[1] * h
    out = cv2.warpAffine(rgb.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    lin = to_linear(out)
    y, x = np.mgrid[:h, :w].astype(np.float32)
    a = math.radians(drift.gradient_deg)
    t = ((x - w / 2) * math.cos(a) + (y - h / 2) * math.sin(a)) / (max(h, w) / 2)
    gain = drift.exposure * (1.0 + drift.gradient * t)
    lin = lin * gain[..., None] * np.asarray(drift.white_balance, np.float32)
    out = to_srgb(lin)
    return out if drift.jpeg_quality is None else _jpeg(out, drift.jpeg_quality)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """The photo saved as an 8-bit JPEG of ``quality`` and decoded again."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor((rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _blobs(shape, rng, *, count: int, diam_px: tuple, amp: tuple) -> np.ndarray:
    """Sum of soft-edged round spots (smoothstep rim), diameters log-uniform in ``diam_px``."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for _ in range(count):
        d = math.exp(rng.uniform(math.log(diam_px[0]), math.log(diam_px[1])))
        r = max(d / 2, 0.75)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.uniform(*amp)
        x0, x1 = int(max(0, cx - r - 1)), int(min(w, cx + r + 2))
        y0, y1 = int(max(0, cy - r - 1)), int(min(h, cy + r + 2))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        v = np.clip((1.0 - np.hypot(xx - cx, yy - cy) / r) / 0.4, 0.0, 1.0)
        out[y0:y1, x0:x1] += a * v * v * (3 - 2 * v)
    return out


def axis_with_leak(od, leak) -> np.ndarray:
    """A pigment's optical-density vector with its colour kept and its brightness part set by ``leak``.

    How much darker a pigment makes skin per unit of its colour depends on the camera (its spectral
    sensitivities) and differs from any fixed vector; :func:`analyzer.colour.separate` estimates it on each photo
    as the leak ``k`` (brightness change = k · chroma change). This returns the vector with the chroma of ``od``
    and the brightness ``k · chroma``: pigment as *this* photo's camera sees this skin's pigment, e.g. a new
    freckle on the same cheek at the next visit.

    Parameters
    ----------
    od : (3,) array
        Optical density (R, G, B) per unit concentration.
    leak : (2,) array
        ``Separation.leak`` of the photo.
    """
    v = -np.asarray(od, float)
    chroma = np.array([_C1 @ v, _C2 @ v])
    return -(chroma[0] * _C1 + chroma[1] * _C2 + float(np.asarray(leak, float) @ chroma))


def add_pigment(rgb: np.ndarray, *, kind: str, px_per_mm: float, seed: int = 0, strength: float = 1.0,
                melanin_od=MELANIN_OD, haemoglobin_od=HAEMOGLOBIN_OD) -> np.ndarray:
    """Add pigment to a real photo in the pigment domain (Beer–Lambert); the relief is unchanged.

    Parameters
    ----------
    rgb : (H, W, 3) float32
        sRGB-encoded photo in ``[0, 1]``.
    kind : {"freckles", "age_spots", "redness"}
        ``freckles``: melanin spots of 1–4 mm, about 1 per cm², melanin +0.3–0.8; ``age_spots``: a few
        melanin patches of 5–12 mm (about 1 per 4 cm²), +0.3–0.6; ``redness``: haemoglobin +0.25 everywhere,
        varying over ~5 mm, with blotches of 3–10 mm (+0.1–0.3), as after micro-needling.
    px_per_mm : float
        Scale of the photo (spot sizes are in mm).
    seed : int
    strength : float
        Multiplies every concentration.
    melanin_od, haemoglobin_od : (3,) array
        Optical densities per unit concentration: the renderer's by default, or a photo's own
        (:func:`axis_with_leak`).

    Returns
    -------
    (H, W, 3) float32
    """
    if kind not in PIGMENT_KINDS:
        raise OptionError(f"pigment kind is {kind!r}; use one of {', '.join(PIGMENT_KINDS)}")
    if not (px_per_mm > 0 and strength >= 0):
        raise OptionError("px_per_mm must be > 0 and strength >= 0")
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    area_cm2 = h * w / px_per_mm**2 / 100.0
    mel = np.zeros((h, w), np.float32)
    hb = np.zeros((h, w), np.float32)
    if kind == "freckles":
        mel = _blobs((h, w), rng, count=max(3, round(1.0 * area_cm2)), diam_px=(1 * px_per_mm, 4 * px_per_mm),
                     amp=(0.3, 0.8))
    elif kind == "age_spots":
        mel = _blobs((h, w), rng, count=max(2, round(0.25 * area_cm2)), diam_px=(5 * px_per_mm, 12 * px_per_mm),
                     amp=(0.3, 0.6))
    else:
        noise = rng.standard_normal((h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 5.0 * px_per_mm / 2)
        noise /= max(float(noise.std()), 1e-6)
        hb = 0.25 * (1.0 + 0.3 * noise)
        hb += _blobs((h, w), rng, count=max(2, round(0.3 * area_cm2)), diam_px=(3 * px_per_mm, 10 * px_per_mm),
                     amp=(0.1, 0.3))
    od = strength * (mel[..., None] * np.asarray(melanin_od, np.float32)
                     + hb[..., None] * np.asarray(haemoglobin_od, np.float32))
    return to_srgb(to_linear(rgb) * np.exp(-od))


def smooth_relief(rgb: np.ndarray, *, px_per_mm: float, sigma_mm: float = 1.0, amount: float = 1.0) -> np.ndarray:
    """Blend a photo toward its own Gaussian-smoothed copy: ``(1 - amount) * photo + amount * smoothed``.

    ``amount=1`` is a Gaussian blur of ``sigma_mm``; smaller amounts scale every detail finer than
    ``sigma_mm`` (relief shading included) by ``1 - amount``. Either way the relief's contrast falls.
    """
    if not (0.0 <= amount <= 1.0 and sigma_mm > 0 and px_per_mm > 0):
        raise OptionError("amount must be in [0, 1], sigma_mm and px_per_mm > 0")
    smooth = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma_mm * px_per_mm, borderType=cv2.BORDER_REFLECT)
    return ((1.0 - amount) * rgb + amount * smooth).astype(np.float32)


#: The kinds of :func:`phone_processing` and what their ``level`` means.
PROCESSING_KINDS = {
    "sharpen 0.1 mm": "unsharp mask of sigma 0.1 mm on the skin, amount = level (phones: 0.3-1)",
    "local contrast 3 mm": "unsharp mask of sigma 3 mm (an 'HDR' or 'clarity' look), amount = level",
    "CLAHE": "contrast-limited adaptive histogram equalisation of Lab L, 8 x 8 tiles, clip limit = level",
    "saturation": "HSV saturation times level",
    "noise reduction": "Gaussian blur of level px (a low-light mode's smoothing)",
    "vignetting": "linear light falling off by level (share) towards the corners",
    "sensor noise": "Gaussian noise of level/255 per channel, then JPEG quality 90",
}


def phone_processing(rgb: np.ndarray, kind: str, level: float, *, px_per_mm: float, seed: int = 0) -> np.ndarray:
    """The photo as another phone, camera mode or app would have processed the same capture.

    Parameters
    ----------
    rgb : (H, W, 3) float32
        sRGB-encoded photo in [0, 1].
    kind : str
        A key of :data:`PROCESSING_KINDS`.
    level : float
        The strength, as :data:`PROCESSING_KINDS` says for the kind.
    px_per_mm : float
        Scale of the photo (sharpening and local contrast are set in mm on the skin).
    seed : int
        For the sensor noise.

    Returns
    -------
    (H, W, 3) float32 in [0, 1]
    """
    if kind not in PROCESSING_KINDS:
        raise OptionError(f"kind must be one of {', '.join(PROCESSING_KINDS)}, got {kind!r}")
    if not (px_per_mm > 0 and math.isfinite(level) and level >= 0):
        raise OptionError("px_per_mm must be > 0 and level a finite number >= 0")
    x = np.ascontiguousarray(rgb, dtype=np.float32)
    if kind in ("sharpen 0.1 mm", "local contrast 3 mm"):
        sigma = (0.1 if kind.startswith("sharpen") else 3.0) * px_per_mm
        blur = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        out = x + np.float32(level) * (x - blur)
    elif kind == "CLAHE":
        lab = cv2.cvtColor((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clipLimit=float(level), tileGridSize=(8, 8)).apply(lab[..., 0])
        out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255
    elif kind == "saturation":
        hsv = cv2.cvtColor(np.clip(x, 0, 1), cv2.COLOR_RGB2HSV)
        hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(level), 0, 1)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    elif kind == "noise reduction":
        out = cv2.GaussianBlur(x, (0, 0), float(level), borderType=cv2.BORDER_REFLECT) if level > 0 else x
    elif kind == "vignetting":
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
        out = to_srgb(to_linear(x) * (1 - np.float32(level) * r2)[..., None])
    else:  # sensor noise, then the phone's JPEG
        noisy = x + np.random.default_rng(seed).normal(0, level / 255, x.shape).astype(np.float32)
        out = _jpeg(np.clip(noisy, 0, 1), 90)
    return np.clip(out, 0, 1).astype(np.float32)
