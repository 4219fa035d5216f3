"""Synthetic skin photos with known relief: the ground truth Relief is validated against.

A skin patch is a height field plus two pigment maps on a fine regular grid; :func:`render` lights it with one
directional lamp, frames it with a camera and returns the uint8 RGB photo a phone would store. Because the
relief is known exactly, every measurement of :mod:`analyzer` can be checked against :func:`true_roughness`.

Model
-----
**Skin patch** (:class:`Skin`, made by :func:`make_skin`). Arrays of shape ``(H, W)`` on a grid of
``px_per_mm`` pixels per mm (default 40, i.e. 25 µm, finer than any photo analysed later). Patch coordinates:
``x_mm`` to the right (columns), ``y_mm`` *down* (rows), origin at the top-left corner of the patch; pixel
``(row, col)`` has its centre at ``((col + 0.5) / px_per_mm, (row + 0.5) / px_per_mm)`` mm.

* ``height_mm`` -- relief in mm; every feature is a depression (negative height) from the flat skin at 0:

  - *pores*: raised-cosine pits, diameter 0.08-0.3 mm, depth 0.01-0.04 mm, ``pores_per_cm2`` (40-120) placed
    uniformly at random;
  - *skin lines*: two families of shallow Gaussian grooves (FWHM 0.1 mm, depth ~``line_depth_mm``,
    0.005-0.02 mm) crossing at 60-120 degrees, spacing 0.5-1.5 mm, gently wavy and fading in and out;
  - *atrophic acne scars* (:data:`SCAR_KINDS`): icepick (diameter 0.3-1.0 mm, depth 0.2-0.6 mm, a cone with a
    rounded tip and rim), boxcar (1.5-4 mm, 0.1-0.5 mm, flat floor and steep smoothstep walls over the outer
    35 % of the radius) and rolling (3-5 mm, 0.1-0.3 mm, a raised-cosine dish). Radial profiles are smoothed
    so slopes stay finite; overlapping scars combine by taking the deeper one. ``severity`` in [0, 1] sets
    the number (0 to :data:`SCARS_PER_CM2_AT_SEVERITY_1` per cm²) and depth (from the bottom of each kind's
    depth range at 0 to its full range at 1) of the scars.

  The scar component (``scar_height_mm``) and the rest (``texture_height_mm``: pores and lines) are kept apart,
  ``height_mm = texture_height_mm + scar_height_mm``, so :func:`scale_scars` changes the scars exactly.
* ``melanin``, ``haemoglobin`` -- pigment concentrations (>= 0, arbitrary units): background 0.4 and 0.3 with
  gentle smooth variation; :func:`add_freckles` adds melanin spots and :func:`add_redness` adds haemoglobin.
  :func:`add_scar_pigment` colours the scars themselves (post-inflammatory erythema: haemoglobin; post-inflammatory
  hyperpigmentation: melanin), each scar in proportion to its own normalised depth profile (:func:`scar_footprint`),
  so the colour sits exactly where the pit is. That colour is kept apart (``scar_melanin``, ``scar_haemoglobin``):
  :func:`fade_scar_pigment` fades it while the pits stay, and :func:`scale_scars` makes the pits shallower while
  the colour stays.

**Colour** (Tsumura et al. 2003 [1]_, Beer-Lambert law [2]_). The diffuse albedo of each linear RGB channel is
``BASE_SKIN_RGB * exp(-(melanin * MELANIN_OD + haemoglobin * HAEMOGLOBIN_OD))``: the pigments attenuate light
with natural-log optical densities per unit concentration :data:`MELANIN_OD` and :data:`HAEMOGLOBIN_OD`,
so pigment is additive in log-RGB, as the colour separation in :mod:`analyzer.colour` assumes. (These are the
renderer's own vectors; the analyser must not rely on knowing them.)

**Lighting** (Lambert's cosine law [3]_). One directional lamp with azimuth ``phi`` and zenith ``theta``.
Azimuth is measured counter-clockwise *as seen on the screen*: ``phi = 0`` means the light comes from the +x side
(image right), 90 from the top of the image (row 0), 180 from the left, 270 from the bottom. Zenith is the
angle between the lamp and the normal of flat skin (0 = straight on, 45 = default, 90 = grazing). With
image axes x right, y down, z out of the skin towards the camera::

    l = (sin(theta) cos(phi), -sin(theta) sin(phi), cos(theta))
    n = (-dh/dx, -dh/dy, 1) / |.|
    E = ambient + (1 - ambient) * max(n . l, 0) / cos(theta)

so flat skin receives E = 1 whatever the lamp, and inside a pit the wall *opposite* the lamp (which faces it)
is brighter while the wall on the lamp's side is darker. Shadows are attached shadows only (``max(n.l, 0)``);
cast shadows and interreflections are not modelled. Optional white Blinn-Phong glare [4]_
``specular * max(n . h, 0) ** SHININESS`` (``h`` the half vector of ``l`` and the view ``(0, 0, 1)``), an optional
linear illumination ramp ``light_gradient`` (relative change across the view, brighter towards the lamp: 0.2 =
+-10 %) and optional ``vignetting`` (relative fall-off ``vignetting * (r / r_corner)**2``). Radiance per channel:
``albedo * E + glare``.

**Camera** (:class:`Capture`). The photo sees a rectangle of the patch ``field_mm`` wide, centred on
``center_mm`` (default: the patch centre), rotated by ``rotation_deg``, sampled on ``out_px = (width, height)``
pixels, so ``px_per_mm = out_px[0] / field_mm`` (default 1350 px / 45 mm = 30 px/mm). A positive
``rotation_deg`` turns the camera so the skin appears rotated *counter-clockwise* on screen by that angle; the
lamp then appears at azimuth ``light_azimuth_deg + rotation_deg`` in the photo
(:attr:`Capture.photo_light_azimuth_deg`). :func:`patch_to_photo_matrix` gives the exact affine map from patch mm
to photo pixels (OpenCV convention: pixel centres at integer coordinates). Imaging chain, in this order:

1. anti-alias pre-blur (Gaussian, sigma = 0.5 x patch pixels per photo pixel, when the photo is coarser) and the
   optical blur ``blur_mm`` (Gaussian sigma in mm), applied together on the fine grid;
2. resampling onto the photo grid with ``cv2.warpAffine`` (bilinear, reflected borders);
3. illumination ramp and vignetting; exposure: linear value = ``BASE_GAIN * exposure * white_balance[c] *
   radiance`` (:data:`BASE_GAIN` makes the mean of typical skin ~0.30 linear at ``exposure = 1``);
4. sensor noise, a Poisson-Gaussian approximation in linear units: ``sigma(x)**2 = noise**2 * (x / 0.5 +
   1/16)`` (shot noise equal to ``noise`` at linear 0.5, read noise ``noise / 4``);
5. clipping to [0, 1], sRGB encoding (IEC 61966-2-1 [5]_), rounding to uint8;
6. optional JPEG round trip at ``jpeg_quality`` with ``cv2.imencode``/``cv2.imdecode`` (4:2:0 chroma).

**Ground truth** (:func:`band_height`, :func:`true_roughness`). The true relief of a band of feature sizes
``min_mm..max_mm`` is a difference of Gaussians of the height with ``sigma = size / (2 sqrt 2)`` (the LoG blob
scale convention: a pit of diameter D responds most at sigma = D / (2 sqrt 2)), computed exactly in the Fourier
domain on a symmetrically padded grid. Note that a DoG attenuates even in-band sinusoids: for the "scar" band
the gain peaks at ~0.945 near a 3.7 mm wavelength (:func:`band_gain` gives the transfer function).

References
----------
.. [1] N. Tsumura, N. Ojima, K. Sato, M. Shiraishi, H. Shimizu, H. Nabeshima, S. Akazaki, K. Hori and
   Y. Miyake, "Image-based skin color and texture analysis/synthesis by extracting hemoglobin and melanin
   information in the skin", ACM Transactions on Graphics 22(3), 770-779 (2003) (Proc. SIGGRAPH 2003).
.. [2] Beer-Lambert law: transmitted fraction = exp(-sum of concentration x absorption), here with
   per-channel optical densities in natural-log units.
.. [3] J. H. Lambert, *Photometria* (1760): irradiance of a diffuse (Lambertian) surface is proportional to
   the cosine of the angle of incidence.
.. [4] J. F. Blinn, "Models of light reflection for computer synthesized pictures", SIGGRAPH 1977, 192-198.
.. [5] IEC 61966-2-1:1999, Multimedia systems and equipment - Colour measurement and management - Default RGB
   colour space - sRGB.

Examples
--------
>>> from analyzer import synth
>>> skin = synth.make_skin(seed=1, severity=0.6, size_mm=(20.0, 15.0), px_per_mm=20.0)
>>> rgb = synth.render(skin, synth.Capture(field_mm=15.0, out_px=(300, 200)))
>>> rgb.shape, rgb.dtype
((200, 300, 3), dtype('uint8'))
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .errors import OptionError
from .registry import BANDS

__all__ = [
    "BASE_SKIN_RGB", "MELANIN_OD", "HAEMOGLOBIN_OD", "BASE_GAIN", "SHININESS", "SCAR_KINDS",
    "SCARS_PER_CM2_AT_SEVERITY_1",
    "ScarTruth", "Skin", "make_skin", "scale_scars", "add_freckles", "add_redness",
    "scar_footprint", "add_scar_pigment", "fade_scar_pigment", "SCAR_REDNESS_HAEMOGLOBIN", "SCAR_BROWN_MELANIN",
    "Capture", "render", "recapture", "patch_to_photo_matrix", "to_photo_px", "albedo",
    "band_gain", "band_height", "true_roughness",
    "save_sample", "make_samples", "SAMPLE_SEED", "SAMPLE_SEVERITY",
]

#: Linear-RGB albedo of pigment-free skin (dermis and epidermis without melanin and blood).
BASE_SKIN_RGB = np.array([0.80, 0.60, 0.50])
#: Natural-log optical density of melanin per unit concentration, linear (R, G, B).
MELANIN_OD = np.array([0.55, 0.85, 1.35])
#: Natural-log optical density of haemoglobin per unit concentration, linear (R, G, B).
HAEMOGLOBIN_OD = np.array([0.08, 0.95, 0.60])
#: Background pigment concentrations of the synthetic patient.
BACKGROUND_MELANIN = 0.4
BACKGROUND_HAEMOGLOBIN = 0.3
#: Blinn-Phong exponent of the optional glare.
SHININESS = 20.0
#: Scar density at severity 1 (scars per cm²).
SCARS_PER_CM2_AT_SEVERITY_1 = 3.5
#: kind -> (diameter range mm, depth range mm, share of scars). Shares follow the usual clinical mix.
SCAR_KINDS: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "icepick": ((0.3, 1.0), (0.2, 0.6), 0.5),
    "boxcar": ((1.5, 4.0), (0.1, 0.5), 0.3),
    "rolling": ((3.0, 5.0), (0.1, 0.3), 0.2),
}
_PORE_DIAMETER_MM = (0.08, 0.3)
_PORE_DEPTH_MM = (0.01, 0.04)
_LINE_FWHM_MM = 0.1
_LINE_SPACING_MM = (0.5, 1.5)


def albedo(melanin, haemoglobin) -> np.ndarray:
    """Linear-RGB diffuse albedo for pigment concentrations (Beer-Lambert on :data:`BASE_SKIN_RGB`).

    Parameters
    ----------
    melanin, haemoglobin : float or ndarray, shape (...)
        Pigment concentrations.

    Returns
    -------
    ndarray, shape (..., 3)
        Albedo per linear RGB channel, in (0, 1).
    """
    m = np.asarray(melanin, dtype=np.float64)[..., None]
    b = np.asarray(haemoglobin, dtype=np.float64)[..., None]
    return BASE_SKIN_RGB * np.exp(-(m * MELANIN_OD + b * HAEMOGLOBIN_OD))


#: Exposure gain that puts typical skin (background pigment, flat, E = 1) at a mean of 0.30 linear: mid-grey-ish,
#: as a camera meters skin, leaving headroom for bright scar walls and exposure drift.
BASE_GAIN = float(0.30 / albedo(BACKGROUND_MELANIN, BACKGROUND_HAEMOGLOBIN).mean())


# ----------------------------------------------------------------------------------------------------- skin
@dataclass(frozen=True)
class ScarTruth:
    """One atrophic scar as placed by :func:`make_skin`.

    ``x_mm``, ``y_mm`` are its centre in patch coordinates (mm from the patch's top-left corner, y down);
    ``diameter_mm`` the nominal rim diameter; ``depth_mm`` the depth of its profile at the centre (positive).
    """

    kind: str
    x_mm: float
    y_mm: float
    diameter_mm: float
    depth_mm: float


@dataclass(frozen=True, eq=False)
class Skin:
    """Ground truth of a skin patch: relief and pigment on a regular grid.

    Parameters
    ----------
    height_mm : ndarray, shape (H, W), float64
        Relief in mm (depressions negative).
    melanin, haemoglobin : ndarray, shape (H, W), float32
        Pigment concentrations (>= 0).
    px_per_mm : float
        Grid scale, pixels per mm.
    scars : tuple of ScarTruth
        The scars in the patch.
    pores_per_cm2 : float
        Pore density actually placed.
    scar_height_mm, texture_height_mm : ndarray, shape (H, W), float64, optional
        The scar-only component of the relief and the rest (pores, lines);
        ``height_mm == texture_height_mm + scar_height_mm``. Needed by :func:`scale_scars`.
    seed, severity, scar_depth_scale
        How :func:`make_skin` built it (for sidecars); ``None`` for hand-built skins.
    scar_melanin, scar_haemoglobin : ndarray, shape (H, W), float32, optional
        The part of ``melanin`` and ``haemoglobin`` that :func:`add_scar_pigment` put inside the scars (already
        included in ``melanin`` and ``haemoglobin``); :func:`fade_scar_pigment` scales it.
    """

    height_mm: np.ndarray = field(repr=False)
    melanin: np.ndarray = field(repr=False)
    haemoglobin: np.ndarray = field(repr=False)
    px_per_mm: float
    scars: tuple[ScarTruth, ...] = field(default=(), repr=False)
    pores_per_cm2: float = 0.0
    scar_height_mm: np.ndarray | None = field(default=None, repr=False)
    texture_height_mm: np.ndarray | None = field(default=None, repr=False)
    seed: int | None = None
    severity: float | None = None
    scar_depth_scale: float = 1.0
    scar_melanin: np.ndarray | None = field(default=None, repr=False)
    scar_haemoglobin: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not (np.isfinite(self.px_per_mm) and self.px_per_mm > 0):
            raise OptionError(f"px_per_mm is {self.px_per_mm}; give the grid scale as a positive number.")
        shape = np.shape(self.height_mm)
        if len(shape) != 2:
            raise OptionError(f"height_mm has shape {shape}; give a 2-D (H, W) height map.")
        for name in ("melanin", "haemoglobin", "scar_height_mm", "texture_height_mm", "scar_melanin",
                     "scar_haemoglobin"):
            arr = getattr(self, name)
            if arr is not None and np.shape(arr) != shape:
                raise OptionError(f"{name} has shape {np.shape(arr)}; it must match height_mm's {shape}.")

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape (H, W)."""
        return tuple(np.shape(self.height_mm))

    @property
    def width_mm(self) -> float:
        """Patch width in mm."""
        return self.shape[1] / self.px_per_mm

    @property
    def height_mm_extent(self) -> float:
        """Patch height (extent along y) in mm; ``height_mm`` itself is the relief."""
        return self.shape[0] / self.px_per_mm

    @property
    def size_mm(self) -> tuple[float, float]:
        """Patch size (width, height) in mm."""
        return (self.width_mm, self.height_mm_extent)


def _smooth_noise(rng: np.random.Generator, shape, px_per_mm: float, scale_mm: float) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field with correlation length ~``scale_mm``, float32 (H, W).

    White noise on a coarse grid (3 cells per ``scale_mm``) is Gaussian-filtered there and upsampled
    bicubically, which is far cheaper than filtering at full resolution.
    """
    h, w = shape
    step_mm = max(scale_mm / 3.0, 1.0 / px_per_mm)
    ch = max(int(math.ceil(h / px_per_mm / step_mm)), 2) + 1
    cw = max(int(math.ceil(w / px_per_mm / step_mm)), 2) + 1
    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), scale_mm / step_mm, mode="wrap")
    coarse = (coarse - coarse.mean()) / coarse.std()
    return cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _splat(shape, cx, cy, radius, amp, profile) -> np.ndarray:
    """Sum of many small radial bumps ``amp * profile(r / radius)`` (support r < radius), float64 (H, W).

    All bumps are evaluated at once in a (N, k, k) window stack and accumulated with ``np.bincount``.
    Positions and radii in pixels.
    """
    h, w = shape
    out = np.zeros(h * w)
    if len(cx) == 0:
        return out.reshape(h, w)
    k = int(math.ceil(float(np.max(radius)))) + 1
    off = np.arange(-k, k + 1)
    ix = np.rint(cx).astype(np.int64)[:, None, None] + off[None, None, :]
    iy = np.rint(cy).astype(np.int64)[:, None, None] + off[None, :, None]
    t = np.hypot(ix - cx[:, None, None], iy - cy[:, None, None]) / radius[:, None, None]
    ok = (t < 1.0) & (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    flat = (iy * w + ix)[ok]
    vals = (amp[:, None, None] * profile(np.minimum(t, 1.0)))[ok]
    out += np.bincount(flat, weights=vals, minlength=h * w)
    return out.reshape(h, w)


def _raised_cosine(t):
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _windows(shape, cx, cy, half):
    """Slices of a square window of half-size ``half`` px around (cx, cy), clipped to the grid, and the
    pixel-centre coordinates inside it; ``None`` if the window misses the grid."""
    h, w = shape
    x0, x1 = max(int(math.floor(cx - half)), 0), min(int(math.ceil(cx + half)) + 1, w)
    y0, y1 = max(int(math.floor(cy - half)), 0), min(int(math.ceil(cy + half)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0, y1), slice(x0, x1)), np.arange(x0, x1)[None, :], np.arange(y0, y1)[:, None]


_T_STEP = 1e-3
_T_MAX = 2.0


@lru_cache(maxsize=None)
def _scar_profile(kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Normalised radial profile P(t) of a scar kind on t = r / R (P(0) = 1, P -> 0 outside the rim).

    Returns the t grid, P on it and the support (t beyond which P is exactly 0). Profiles are smoothed with a
    Gaussian in t (even extension about t = 0, so the centre stays smooth) so slopes are finite.
    """
    t = np.arange(0.0, _T_MAX + _T_STEP / 2, _T_STEP)
    if kind == "icepick":  # cone with rounded tip and rim
        raw, smooth = np.clip(1.0 - t, 0.0, None), 0.1
    elif kind == "boxcar":  # flat floor, smoothstep wall over the outer 35 % of the radius
        u = np.clip((1.0 - t) / 0.35, 0.0, 1.0)
        raw, smooth = u * u * (3.0 - 2.0 * u), 0.03
    elif kind == "rolling":  # raised-cosine dish, already smooth
        raw, smooth = np.where(t < 1.0, _raised_cosine(np.minimum(t, 1.0)), 0.0), 0.0
    else:
        raise OptionError(f"unknown scar kind {kind!r}; use one of {', '.join(SCAR_KINDS)}.")
    p = ndimage.gaussian_filter1d(raw, smooth / _T_STEP, mode="mirror") if smooth else raw
    p = p / p[0]
    p[p < 1e-6] = 0.0
    support = float(t[np.nonzero(p)[0][-1]] + _T_STEP)
    p.setflags(write=False)
    return t, p, support


def _paint_scars(shape, px_per_mm: float, scars: list[ScarTruth]) -> np.ndarray:
    """Height (mm, <= 0) of the scars, each painted into a window around its centre; deeper one wins."""
    out = np.zeros(shape)
    for s in scars:
        t_grid, prof, support = _scar_profile(s.kind)
        r_px = 0.5 * s.diameter_mm * px_per_mm
        cx, cy = s.x_mm * px_per_mm - 0.5, s.y_mm * px_per_mm - 0.5
        win = _windows(shape, cx, cy, r_px * support + 1)
        if win is None:
            continue
        sl, xs, ys = win
        t = np.hypot(xs - cx, ys - cy) / r_px
        np.minimum(out[sl], -s.depth_mm * np.interp(t, t_grid, prof, right=0.0), out=out[sl])
    return out


def _draw_scars(rng: np.random.Generator, size_mm, severity: float) -> list[ScarTruth]:
    """Scars at unit depth scale. Parameters of the most severe case are drawn in one block, and a milder
    severity takes the first rows, so scars keep their place and grow in number and depth with severity."""
    w_mm, h_mm = size_mm
    n_max = int(round(SCARS_PER_CM2_AT_SEVERITY_1 * w_mm * h_mm / 100.0))
    rows = rng.random((n_max, 5))
    n = int(round(severity * n_max))
    kinds = list(SCAR_KINDS)
    cum = np.cumsum([SCAR_KINDS[k][2] for k in kinds])
    depth_spread = 0.25 + 0.75 * severity
    scars = []
    for ux, uy, uk, ud, uz in rows[:n]:
        kind = kinds[int(np.searchsorted(cum, uk * cum[-1], side="right"))]
        (d0, d1), (z0, z1), _ = SCAR_KINDS[kind]
        scars.append(ScarTruth(kind, float(ux * w_mm), float(uy * h_mm),
                               float(d0 + (d1 - d0) * ud), float(z0 + (z1 - z0) * uz * depth_spread)))
    return scars


def _skin_lines(rng: np.random.Generator, shape, px_per_mm: float, depth_mm: float) -> np.ndarray:
    """Two families of wavy Gaussian grooves (float32 mm, <= 0)."""
    h, w = shape
    x = ((np.arange(w, dtype=np.float32) + 0.5) / np.float32(px_per_mm))[None, :]
    y = ((np.arange(h, dtype=np.float32) + 0.5) / np.float32(px_per_mm))[:, None]
    sigma = _LINE_FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    theta0 = rng.uniform(0.0, math.pi)
    out = np.zeros(shape, np.float32)
    for theta in (theta0, theta0 + rng.uniform(math.pi / 3, 2 * math.pi / 3)):
        spacing = rng.uniform(*_LINE_SPACING_MM)
        depth = depth_mm * rng.uniform(0.7, 1.3)
        warp = (0.45 * _smooth_noise(rng, shape, px_per_mm, 2.5)  # in cycles: lines meander and branch
                + 0.12 * _smooth_noise(rng, shape, px_per_mm, 0.8))
        fade = np.clip(1.0 + 0.6 * _smooth_noise(rng, shape, px_per_mm, 1.5), 0.1, 2.2)
        phase = (x * np.float32(math.cos(theta)) + y * np.float32(math.sin(theta))) / np.float32(spacing) + warp
        d = (phase - np.rint(phase)) * np.float32(spacing)
        out -= np.float32(depth) * fade * np.exp(d * d * np.float32(-0.5 / sigma**2))
    return out


def _pigment(rng, shape, px_per_mm, mean, coarse_sd, fine_sd, coarse_mm, fine_mm) -> np.ndarray:
    m = (mean + coarse_sd * _smooth_noise(rng, shape, px_per_mm, coarse_mm)
         + fine_sd * _smooth_noise(rng, shape, px_per_mm, fine_mm))
    return np.clip(m, 0.0, None).astype(np.float32)


# Independent random streams, so that e.g. changing the number of scars does not move the pores.
_STREAM_PIGMENT, _STREAM_PORES, _STREAM_LINES, _STREAM_SCARS, _STREAM_FRECKLES, _STREAM_REDNESS = range(6)


def make_skin(*, seed: int, severity: float = 0.5, size_mm=(60.0, 45.0), px_per_mm: float = 40.0,
              scar_depth_scale: float = 1.0, pores_per_cm2: float = 80.0, line_depth_mm: float = 0.01) -> Skin:
    """Make a synthetic skin patch with acne scars, pores and skin lines.

    Parameters
    ----------
    seed : int
        Seed of every random choice; the same seed gives identical arrays.
    severity : float in [0, 1], default 0.5
        Scar burden: 0 = no scars (pores and lines only), 1 = :data:`SCARS_PER_CM2_AT_SEVERITY_1` scars per cm²
        at the full depth ranges of :data:`SCAR_KINDS`. A higher severity keeps the scars of a lower one (same
        seed) and adds more, deeper ones.
    size_mm : (float, float), default (60, 45)
        Patch (width, height) in mm. The default leaves room for :func:`recapture`'s framing drift of the
        default 45 mm view.
    px_per_mm : float, default 40
        Grid scale of the patch.
    scar_depth_scale : float, default 1.0
        Multiplies the depth of every scar; scar positions and sizes do not depend on it, so
        ``make_skin(seed=s, scar_depth_scale=0.7)`` equals ``scale_scars(make_skin(seed=s), 0.7)``.
    pores_per_cm2 : float, default 80
        Pore density (typical facial skin: 40-120 per cm²).
    line_depth_mm : float, default 0.01
        Mean depth of the skin-line grooves (typically 0.005-0.02 mm).

    Returns
    -------
    Skin

    Raises
    ------
    OptionError
        If an option is out of range.
    """
    if not 0.0 <= severity <= 1.0:
        raise OptionError(f"severity is {severity}; give a value between 0 (no scars) and 1 (severe).")
    if not (np.isfinite(px_per_mm) and px_per_mm > 0):
        raise OptionError(f"px_per_mm is {px_per_mm}; give a positive grid scale such as 40.")
    if scar_depth_scale < 0 or pores_per_cm2 < 0 or line_depth_mm < 0:
        raise OptionError("scar_depth_scale, pores_per_cm2 and line_depth_mm must be >= 0; pass non-negative values.")
    w_mm, h_mm = (float(v) for v in size_mm)
    shape = (int(round(h_mm * px_per_mm)), int(round(w_mm * px_per_mm)))
    if min(shape) < 16:
        raise OptionError(f"the patch would be {shape[1]}x{shape[0]} px; make size_mm or px_per_mm larger.")
    w_mm, h_mm = shape[1] / px_per_mm, shape[0] / px_per_mm

    def stream(k):
        return np.random.default_rng([int(seed), k])

    rng = stream(_STREAM_PIGMENT)
    melanin = _pigment(rng, shape, px_per_mm, BACKGROUND_MELANIN, 0.05, 0.025, 8.0, 1.5)
    haemoglobin = _pigment(rng, shape, px_per_mm, BACKGROUND_HAEMOGLOBIN, 0.05, 0.02, 6.0, 1.0)

    rng = stream(_STREAM_PORES)
    n_pores = int(round(pores_per_cm2 * w_mm * h_mm / 100.0))
    u = rng.random((n_pores, 4))
    diam = _PORE_DIAMETER_MM[0] * (_PORE_DIAMETER_MM[1] / _PORE_DIAMETER_MM[0]) ** u[:, 2]  # log-uniform
    depth = _PORE_DEPTH_MM[0] + (_PORE_DEPTH_MM[1] - _PORE_DEPTH_MM[0]) * u[:, 3]
    texture = _splat(shape, u[:, 0] * shape[1] - 0.5, u[:, 1] * shape[0] - 0.5, 0.5 * diam * px_per_mm,
                     -depth, _raised_cosine)
    if line_depth_mm > 0:
        texture += _skin_lines(stream(_STREAM_LINES), shape, px_per_mm, line_depth_mm)

    unit_scars = _draw_scars(stream(_STREAM_SCARS), (w_mm, h_mm), severity)
    scar = _paint_scars(shape, px_per_mm, unit_scars) * scar_depth_scale
    scars = tuple(replace(s, depth_mm=s.depth_mm * scar_depth_scale) for s in unit_scars)
    return Skin(height_mm=texture + scar, melanin=melanin, haemoglobin=haemoglobin, px_per_mm=float(px_per_mm),
                scars=scars, pores_per_cm2=n_pores * 100.0 / (w_mm * h_mm), scar_height_mm=scar,
                texture_height_mm=texture, seed=int(seed), severity=float(severity),
                scar_depth_scale=float(scar_depth_scale))


def scale_scars(skin: Skin, factor: float) -> Skin:
    """The same skin with every scar ``factor`` times as deep (0.7 = 30 % shallower).

    Pores, lines and pigment are unchanged (also the colour :func:`add_scar_pigment` put inside the scars: the
    pits fill while their colour stays); the scar component is scaled exactly.

    Raises
    ------
    OptionError
        If ``factor`` is negative or the skin has no separate scar component.
    """
    if not (np.isfinite(factor) and factor >= 0):
        raise OptionError(f"factor is {factor}; give a non-negative depth factor such as 0.7.")
    if skin.scar_height_mm is None or skin.texture_height_mm is None:
        raise OptionError("this skin has no separate scar component; build it with make_skin to scale its scars.")
    scar = skin.scar_height_mm * factor
    return replace(skin, height_mm=skin.texture_height_mm + scar, scar_height_mm=scar,
                   scars=tuple(replace(s, depth_mm=s.depth_mm * factor) for s in skin.scars),
                   scar_depth_scale=skin.scar_depth_scale * factor)


def _paint_blobs(shape, rows_px, profile) -> np.ndarray:
    """Sum of elliptical blobs; rows of (cx, cy, radius, amplitude, axis ratio, angle) in px/rad."""
    out = np.zeros(shape)
    for cx, cy, r, amp, ratio, ang in rows_px:
        win = _windows(shape, cx, cy, r * 1.05 + 1)
        if win is None:
            continue
        sl, xs, ys = win
        dx, dy = xs - cx, ys - cy
        c, s = math.cos(ang), math.sin(ang)
        t = np.hypot(dx * c + dy * s, (-dx * s + dy * c) / ratio) / r
        out[sl] += amp * profile(t)
    return out


def add_freckles(skin: Skin, *, seed: int, count: int = 40, strength: float = 1.0) -> Skin:
    """Add melanin spots (freckles, age spots; diameter 1-6 mm); the relief is unchanged.

    Spots are soft-edged ellipses with melanin amplitude 0.25-0.9 (x ``strength``). The i-th freckle does not
    depend on ``count``, so a smaller ``count`` with the same seed keeps a subset (fading freckles).
    """
    if count < 0 or strength < 0:
        raise OptionError("count and strength must be >= 0; pass non-negative values.")
    rng = np.random.default_rng([int(seed), _STREAM_FRECKLES])
    u = rng.random((int(count), 6))
    ppm = skin.px_per_mm
    h, w = skin.shape
    diam = 1.0 * 6.0 ** u[:, 2]  # log-uniform 1-6 mm
    rows = np.column_stack([u[:, 0] * w - 0.5, u[:, 1] * h - 0.5, 0.5 * diam * ppm,
                            strength * (0.25 + 0.65 * u[:, 3]), 0.6 + 0.4 * u[:, 4], u[:, 5] * math.pi])

    def soft_disc(t):
        v = np.clip((1.0 - t) / 0.4, 0.0, 1.0)
        return v * v * (3.0 - 2.0 * v)

    spots = _paint_blobs(skin.shape, rows, soft_disc)
    return replace(skin, melanin=(skin.melanin + spots).astype(np.float32))


def add_redness(skin: Skin, *, strength: float = 1.0, seed: int = 0) -> Skin:
    """Add haemoglobin as after micro-needling; the relief is unchanged.

    Three parts, all x ``strength``: diffuse erythema (+0.35, varying +-30 % over ~5 mm), blotches (0.3 per cm²,
    diameter 3-10 mm, +0.1-0.3, Gaussian) and pinpoint bleeding (15 per cm², diameter 0.1-0.3 mm, +0.4-1.0).
    """
    if strength < 0:
        raise OptionError(f"strength is {strength}; pass a non-negative strength such as 1.0.")
    rng = np.random.default_rng([int(seed), _STREAM_REDNESS])
    ppm = skin.px_per_mm
    h, w = skin.shape
    area_cm2 = skin.width_mm * skin.height_mm_extent / 100.0
    extra = 0.35 * (1.0 + 0.3 * _smooth_noise(rng, skin.shape, ppm, 5.0)).astype(np.float64)
    u = rng.random((int(round(0.3 * area_cm2)), 4))
    rows = np.column_stack([u[:, 0] * w - 0.5, u[:, 1] * h - 0.5, 0.5 * (3.0 + 7.0 * u[:, 2]) * ppm,
                            0.1 + 0.2 * u[:, 3], np.ones(len(u)), np.zeros(len(u))])
    extra += _paint_blobs(skin.shape, rows, lambda t: np.where(t < 1.0, np.exp(-8.0 * t * t), 0.0))
    u = rng.random((int(round(15.0 * area_cm2)), 4))
    extra += _splat(skin.shape, u[:, 0] * w - 0.5, u[:, 1] * h - 0.5,
                    np.maximum(0.5 * (0.1 + 0.2 * u[:, 2]) * ppm, 0.75), 0.4 + 0.6 * u[:, 3], _raised_cosine)
    return replace(skin, haemoglobin=(skin.haemoglobin + strength * extra).astype(np.float32))


#: Haemoglobin added at the centre of a scar by :func:`add_scar_pigment` at ``redness=1`` (post-inflammatory
#: erythema: a clearly red pit, about twice the background haemoglobin).
SCAR_REDNESS_HAEMOGLOBIN = 0.6
#: Melanin added at the centre of a scar at ``brown=1`` (post-inflammatory hyperpigmentation: a brown pit).
SCAR_BROWN_MELANIN = 0.5


def scar_footprint(skin: Skin) -> np.ndarray:
    """Each scar's own depth profile normalised to 1 at its centre (deepest scar wins where they overlap).

    It does not depend on the scars' depth, so pigment painted with it stays put when :func:`scale_scars` fills
    the pits.

    Returns
    -------
    ndarray, shape (H, W), float32
        In [0, 1]; 0 outside every scar.
    """
    unit = [replace(s, depth_mm=1.0) for s in skin.scars]
    return (-_paint_scars(skin.shape, skin.px_per_mm, unit)).astype(np.float32)


def add_scar_pigment(skin: Skin, *, redness: float = 0.0, brown: float = 0.0) -> Skin:
    """Colour inside the scars: redness (haemoglobin) and brown (melanin) following each scar's own profile.

    Atrophic acne scars are often red (post-inflammatory erythema) or brown (post-inflammatory
    hyperpigmentation) inside the pit, deepest in colour where the pit is deepest. Adds
    ``redness * SCAR_REDNESS_HAEMOGLOBIN * P`` to the haemoglobin and ``brown * SCAR_BROWN_MELANIN * P`` to the
    melanin, ``P`` = :func:`scar_footprint`. The relief is unchanged. Calling it again adds more.

    Parameters
    ----------
    skin : Skin
        Made by :func:`make_skin` (or any skin with ``scars``).
    redness, brown : float, >= 0
        Strength of the erythema and of the hyperpigmentation (1 = a clearly coloured pit).

    Returns
    -------
    Skin
        With ``scar_haemoglobin`` / ``scar_melanin`` holding the added colour, for :func:`fade_scar_pigment`.
    """
    if not (np.isfinite(redness) and np.isfinite(brown) and redness >= 0 and brown >= 0):
        raise OptionError(f"redness={redness}, brown={brown}; pass non-negative strengths such as 1.0.")
    foot = scar_footprint(skin)
    hb = (redness * SCAR_REDNESS_HAEMOGLOBIN * foot).astype(np.float32)
    mel = (brown * SCAR_BROWN_MELANIN * foot).astype(np.float32)
    old_hb = skin.scar_haemoglobin if skin.scar_haemoglobin is not None else 0.0
    old_mel = skin.scar_melanin if skin.scar_melanin is not None else 0.0
    return replace(skin, haemoglobin=(skin.haemoglobin + hb).astype(np.float32),
                   melanin=(skin.melanin + mel).astype(np.float32),
                   scar_haemoglobin=(old_hb + hb).astype(np.float32), scar_melanin=(old_mel + mel).astype(np.float32))


def fade_scar_pigment(skin: Skin, factor: float) -> Skin:
    """The same skin with the colour inside its scars ``factor`` times as strong (0 = faded away); pits unchanged.

    Raises
    ------
    OptionError
        If ``factor`` is negative or the skin has no scar colour (:func:`add_scar_pigment`).
    """
    if not (np.isfinite(factor) and factor >= 0):
        raise OptionError(f"factor is {factor}; give a non-negative strength factor such as 0.3.")
    if skin.scar_haemoglobin is None or skin.scar_melanin is None:
        raise OptionError("this skin has no colour inside its scars; add it with add_scar_pigment first.")
    hb, mel = skin.scar_haemoglobin * np.float32(factor), skin.scar_melanin * np.float32(factor)
    return replace(skin, haemoglobin=(skin.haemoglobin - skin.scar_haemoglobin + hb).astype(np.float32),
                   melanin=(skin.melanin - skin.scar_melanin + mel).astype(np.float32),
                   scar_haemoglobin=hb.astype(np.float32), scar_melanin=mel.astype(np.float32))


# --------------------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class Capture:
    """Everything that drifts between visits; the defaults are a well-taken photo.

    Attributes
    ----------
    exposure : float
        Exposure gain on top of :data:`BASE_GAIN` (1 = well exposed).
    white_balance : (float, float, float)
        Linear gains of R, G, B.
    light_azimuth_deg, light_zenith_deg : float
        Lamp direction in the *patch* frame (see the module notes; 0 = from image right, 90 = from the top).
    ambient : float
        Fraction of diffuse (non-directional) light, in [0, 1).
    light_gradient : float
        Relative illumination change across the view, brighter towards the lamp (0.2 = +-10 %).
    specular : float
        Strength of white Blinn-Phong glare (0 = matte).
    field_mm : float
        Width of skin the photo shows, mm.
    out_px : (int, int)
        Photo (width, height) in pixels.
    center_mm : (float, float) or None
        View centre in patch mm; ``None`` = patch centre.
    rotation_deg : float
        Camera roll; the skin appears rotated counter-clockwise by this angle in the photo.
    blur_mm : float
        Optical blur, Gaussian sigma in mm on the skin.
    noise : float
        Sensor noise SD at linear 0.5 (Poisson-Gaussian, see the module notes).
    jpeg_quality : int or None
        JPEG round trip quality (None = no JPEG).
    vignetting : float
        Relative light fall-off at the photo corners.
    card_center_mm : (float, float) or None
        Where the printed calibration card (:mod:`analyzer.card`) lies flat on the skin, as the card's centre in
        mm from the photo's top-left corner; ``None`` = no card. It occludes the skin under it.
    card_rotation_deg : float
        In-plane rotation of the card in the photo (counter-clockwise).
    """

    exposure: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_azimuth_deg: float = 135.0
    light_zenith_deg: float = 45.0
    ambient: float = 0.2
    light_gradient: float = 0.0
    specular: float = 0.0
    field_mm: float = 45.0
    out_px: tuple[int, int] = (1350, 900)
    center_mm: tuple[float, float] | None = None
    rotation_deg: float = 0.0
    blur_mm: float = 0.02
    noise: float = 0.005
    jpeg_quality: int | None = 92
    vignetting: float = 0.0
    card_center_mm: tuple[float, float] | None = None
    card_rotation_deg: float = 0.0

    @property
    def px_per_mm(self) -> float:
        """Photo scale, pixels per mm of skin (``out_px[0] / field_mm``)."""
        return self.out_px[0] / self.field_mm

    @property
    def photo_light_azimuth_deg(self) -> float:
        """Lamp azimuth as it appears in the photo, degrees in [0, 360) (patch azimuth + rotation)."""
        return (self.light_azimuth_deg + self.rotation_deg) % 360.0


def _check_capture(c: Capture) -> None:
    w, h = c.out_px
    if int(w) != w or int(h) != h or w < 8 or h < 8:
        raise OptionError(f"out_px is {c.out_px}; give the photo size as two integers of at least 8 pixels.")
    if not c.field_mm > 0:
        raise OptionError(f"field_mm is {c.field_mm}; give the width of the view in mm as a positive number.")
    if not 0.0 <= c.light_zenith_deg < 89.0:
        raise OptionError(f"light_zenith_deg is {c.light_zenith_deg}; use an angle from 0 to below 89 degrees.")
    if not 0.0 <= c.ambient < 1.0:
        raise OptionError(f"ambient is {c.ambient}; use a fraction from 0 to below 1.")
    if c.exposure <= 0 or min(c.white_balance) <= 0:
        raise OptionError("exposure and white_balance gains must be positive; pass values above 0.")
    if c.blur_mm < 0 or c.noise < 0 or c.specular < 0 or c.vignetting < 0 or c.light_gradient < 0:
        raise OptionError("blur_mm, noise, specular, vignetting and light_gradient must be >= 0.")
    if c.jpeg_quality is not None and not 1 <= c.jpeg_quality <= 100:
        raise OptionError(f"jpeg_quality is {c.jpeg_quality}; use 1-100 or None for no JPEG.")


def _photo_to_patch_mm(size_mm, c: Capture) -> np.ndarray:
    """2x3 affine: photo pixel (u, v) (centres at integers) -> patch (x_mm, y_mm)."""
    w, h = c.out_px
    s = c.field_mm / w
    th = math.radians(c.rotation_deg)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    centre = np.array(c.center_mm if c.center_mm is not None else (size_mm[0] / 2, size_mm[1] / 2), float)
    lin = s * rot
    return np.column_stack([lin, centre - lin @ np.array([(w - 1) / 2, (h - 1) / 2])])


def patch_to_photo_matrix(skin: Skin, capture: Capture) -> np.ndarray:
    """Affine map from patch mm to photo pixels.

    Returns
    -------
    ndarray, shape (2, 3)
        ``M`` with ``(u, v) = M @ (x_mm, y_mm, 1)``; ``u`` column, ``v`` row, pixel centres at integers
        (the OpenCV convention). Two captures of the same skin are related by
        ``M_b @ inv(M_a)`` (in homogeneous form).
    """
    return cv2.invertAffineTransform(_photo_to_patch_mm(skin.size_mm, capture))


def to_photo_px(skin: Skin, capture: Capture, x_mm, y_mm) -> tuple[np.ndarray, np.ndarray]:
    """Photo pixel coordinates (u = column, v = row) of patch points in mm."""
    m = patch_to_photo_matrix(skin, capture)
    x, y = np.asarray(x_mm, float), np.asarray(y_mm, float)
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def _encode_srgb(lin: np.ndarray) -> np.ndarray:
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(np.maximum(lin, 0.0031308), 1 / 2.4) - 0.055)


def render(skin: Skin, capture: Capture = Capture(), *, seed: int = 0) -> np.ndarray:
    """Photograph a skin patch.

    Parameters
    ----------
    skin : Skin
        The patch (relief and pigment).
    capture : Capture
        Lamp, framing and camera settings.
    seed : int, default 0
        Seed of the sensor noise.

    Returns
    -------
    ndarray, shape (out_px[1], out_px[0], 3), uint8
        The sRGB photo, RGB order, at ``capture.px_per_mm``.

    Notes
    -----
    Only the part of the patch the camera sees (plus a blur margin) is shaded. Views reaching past the patch
    see it mirrored at its edge.
    """
    _check_capture(capture)
    ppm = skin.px_per_mm
    out_w, out_h = (int(v) for v in capture.out_px)
    # photo pixel -> patch pixel (centres at integers in both)
    a = _photo_to_patch_mm(skin.size_mm, capture) * ppm
    a[:, 2] -= 0.5
    ratio = ppm / capture.px_per_mm  # patch pixels per photo pixel
    sigma = math.hypot(0.5 * ratio if ratio > 1 else 0.0, capture.blur_mm * ppm)
    # crop the patch to the view's bounding box plus the blur kernel and an interpolation margin
    corners = a @ np.array([[0, out_w - 1, 0, out_w - 1], [0, 0, out_h - 1, out_h - 1], [1, 1, 1, 1]], float)
    pad = int(math.ceil(4 * sigma)) + 3
    h, w = skin.shape
    x0, x1 = max(int(corners[0].min()) - pad, 0), min(int(math.ceil(corners[0].max())) + pad + 1, w)
    y0, y1 = max(int(corners[1].min()) - pad, 0), min(int(math.ceil(corners[1].max())) + pad + 1, h)
    if x0 >= x1 - 2 or y0 >= y1 - 2:
        raise OptionError("the view lies outside the skin patch; move center_mm inside the patch.")
    a[:, 2] -= (x0, y0)
    height = np.asarray(skin.height_mm[y0:y1, x0:x1], np.float32)
    mel = np.asarray(skin.melanin[y0:y1, x0:x1], np.float32)
    hb = np.asarray(skin.haemoglobin[y0:y1, x0:x1], np.float32)

    # Lambertian shading with the lamp in the patch frame (x right, y down, z towards the camera)
    phi, th = math.radians(capture.light_azimuth_deg), math.radians(capture.light_zenith_deg)
    lx, ly, lz = math.sin(th) * math.cos(phi), -math.sin(th) * math.sin(phi), math.cos(th)
    gy, gx = np.gradient(height, np.float32(1.0 / ppm))
    inv_norm = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    ndotl = (lz - gx * np.float32(lx) - gy * np.float32(ly)) * inv_norm
    irr = capture.ambient + (1.0 - capture.ambient) / lz * np.maximum(ndotl, 0.0)
    od = mel[..., None] * MELANIN_OD.astype(np.float32) + hb[..., None] * HAEMOGLOBIN_OD.astype(np.float32)
    rad = BASE_SKIN_RGB.astype(np.float32) * np.exp(-od) * irr[..., None]
    if capture.specular > 0:
        hv = np.array([lx, ly, lz + 1.0])
        hv /= np.linalg.norm(hv)
        ndoth = np.maximum((hv[2] - gx * np.float32(hv[0]) - gy * np.float32(hv[1])) * inv_norm, 0.0)
        rad += (capture.specular * np.power(ndoth, SHININESS) * (ndotl > 0))[..., None].astype(np.float32)
    rad = rad.astype(np.float32)
    if sigma > 0.05:
        rad = cv2.GaussianBlur(rad, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    img = cv2.warpAffine(rad, a, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101)

    if capture.card_center_mm is not None:
        img = _paste_card(img, capture)

    gain = np.float32(BASE_GAIN * capture.exposure) * np.asarray(capture.white_balance, np.float32)
    if capture.light_gradient > 0 or capture.vignetting > 0:
        u = (np.arange(out_w, dtype=np.float32) - (out_w - 1) / 2)[None, :]
        v = (np.arange(out_h, dtype=np.float32) - (out_h - 1) / 2)[:, None]
        field_ = np.ones((out_h, out_w), np.float32)
        if capture.light_gradient > 0:
            ap = math.radians(capture.photo_light_azimuth_deg)
            dx, dy = math.cos(ap), -math.sin(ap)
            extent = abs(dx) * out_w + abs(dy) * out_h
            field_ = field_ + np.float32(capture.light_gradient / extent) * (u * dx + v * dy)
        if capture.vignetting > 0:
            r2 = (u * u + v * v) / np.float32(((out_w - 1) / 2) ** 2 + ((out_h - 1) / 2) ** 2)
            field_ = field_ * (1.0 - np.float32(capture.vignetting) * r2)
        img *= field_[..., None]
    img *= gain
    if capture.noise > 0:
        rng = np.random.default_rng(seed)
        sd = np.float32(capture.noise) * np.sqrt(np.maximum(img, 0.0) / np.float32(0.5) + np.float32(1 / 16))
        img += sd * rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0.0, 1.0, out=img)
    rgb = np.rint(_encode_srgb(img) * 255.0).astype(np.uint8)
    if capture.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(capture.jpeg_quality)])
        rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return rgb


def recapture(rng: np.random.Generator, *, base: Capture = Capture(), light_azimuth_jitter_deg: float = 20.0,
              light_zenith_jitter_deg: float = 0.5, exposure_range=(0.7, 1.4), white_balance_range=(0.85, 1.15),
              shift_mm: float = 3.0, rotation_jitter_deg: float = 8.0, zoom_jitter: float = 0.08,
              max_light_gradient: float = 0.15, blur_mm_range=(0.01, 0.03), noise_range=(0.003, 0.01),
              jpeg_quality_range=(80, 95), size_mm=(60.0, 45.0)) -> Capture:
    """A realistic "same protocol, another day" capture: ``base`` with random drift.

    Drift (all uniform unless said): exposure x ``exposure_range`` (log-uniform, default 0.7-1.4); each white
    balance gain x ``white_balance_range`` (0.85-1.15); light azimuth +- ``light_azimuth_jitter_deg`` (20) and
    zenith +- ``light_zenith_jitter_deg`` (0.5: the protocol keeps the lamp at a fixed height, e.g. on a stand —
    4 mm at 50 cm; elevation drift is indistinguishable from a relief change in one photo, see
    ``analyzer.validate``'s single-drift table); view centre shifted +- ``shift_mm`` (3) along x and y from
    ``base.center_mm`` (or the centre of a patch of ``size_mm``, the :func:`make_skin` default); rotation
    +- ``rotation_jitter_deg`` (8); ``field_mm`` x (1 +- ``zoom_jitter``) (8 %); ``light_gradient`` 0 to
    ``max_light_gradient`` (0.15); ``blur_mm`` in ``blur_mm_range`` (0.01-0.03 mm: in focus; the quality gate
    sends clearly soft photos back); ``noise`` in ``noise_range``
    (0.003-0.01); ``jpeg_quality`` an integer in ``jpeg_quality_range`` (80-95, inclusive). Ambient, glare,
    vignetting and ``out_px`` are kept from ``base``. With the defaults the view stays inside a 60 x 45 mm patch.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the drift; values are drawn in a fixed order, so a seeded generator gives a fixed capture.
    """
    e0, e1 = exposure_range
    exposure = base.exposure * math.exp(rng.uniform(math.log(e0), math.log(e1)))
    wb = tuple(float(g * rng.uniform(*white_balance_range)) for g in base.white_balance)
    azimuth = base.light_azimuth_deg + rng.uniform(-1, 1) * light_azimuth_jitter_deg
    zenith = base.light_zenith_deg + rng.uniform(-1, 1) * light_zenith_jitter_deg
    centre = np.asarray(base.center_mm if base.center_mm is not None else (size_mm[0] / 2, size_mm[1] / 2), float)
    centre = centre + rng.uniform(-1, 1, 2) * shift_mm
    rotation = base.rotation_deg + rng.uniform(-1, 1) * rotation_jitter_deg
    field_mm = base.field_mm * (1.0 + rng.uniform(-1, 1) * zoom_jitter)
    gradient = rng.uniform(0.0, max_light_gradient)
    blur = rng.uniform(*blur_mm_range)
    noise = rng.uniform(*noise_range)
    quality = int(rng.integers(jpeg_quality_range[0], jpeg_quality_range[1] + 1))
    return replace(base, exposure=float(exposure), white_balance=wb, light_azimuth_deg=float(azimuth),
                   light_zenith_deg=float(zenith), center_mm=(float(centre[0]), float(centre[1])),
                   rotation_deg=float(rotation), field_mm=float(field_mm), light_gradient=float(gradient),
                   blur_mm=float(blur), noise=float(noise), jpeg_quality=quality)


# ---------------------------------------------------------------------------------------------- ground truth
def _band_sigmas(min_mm: float, max_mm: float) -> tuple[float, float]:
    if not (0 <= min_mm < max_mm):
        raise OptionError(f"band ({min_mm}, {max_mm}) mm is empty; give 0 <= min_mm < max_mm.")
    k = 1.0 / (2.0 * math.sqrt(2.0))
    return min_mm * k, max_mm * k


def band_gain(wavelength_mm, *, min_mm: float, max_mm: float):
    """Amplitude transfer of :func:`band_height` for a sinusoid of the given wavelength (mm).

    ``exp(-2 pi² s1² / L²) - exp(-2 pi² s2² / L²)`` with ``s = size / (2 sqrt 2)``.
    """
    s1, s2 = _band_sigmas(min_mm, max_mm)
    f2 = 1.0 / np.asarray(wavelength_mm, float) ** 2
    return np.exp(-2 * math.pi**2 * s1**2 * f2) - np.exp(-2 * math.pi**2 * s2**2 * f2)


def band_height(skin: Skin, *, min_mm: float, max_mm: float) -> np.ndarray:
    """The true relief band-passed to features of size ``min_mm``..``max_mm``.

    Difference of Gaussians ``G(s1) * h - G(s2) * h`` with ``s = size / (2 sqrt 2)`` (LoG blob scale
    convention), evaluated with the exact Gaussian transfer function in the Fourier domain on a grid padded
    by symmetric reflection (4 x s2, as ``scipy.ndimage.gaussian_filter(mode="reflect")``).

    Parameters
    ----------
    skin : Skin
    min_mm, max_mm : float
        Feature sizes (diameters) bounding the band; ``max_mm`` may be ``inf`` (no low cut).

    Returns
    -------
    ndarray, shape (H, W), float64
        Band-passed height in mm.
    """
    s1, s2 = _band_sigmas(min_mm, max_mm)
    ppm = skin.px_per_mm
    h = np.asarray(skin.height_mm, np.float64)
    rows, cols = h.shape
    s1_px, s2_px = s1 * ppm, s2 * ppm
    pad = int(math.ceil(4 * (s2_px if math.isfinite(s2_px) else s1_px))) + 1
    nr = sfft.next_fast_len(rows + 2 * pad, real=True)
    nc = sfft.next_fast_len(cols + 2 * pad, real=True)
    padded = np.pad(h, ((pad, nr - rows - pad), (pad, nc - cols - pad)), mode="symmetric")
    f2 = sfft.fftfreq(nr)[:, None] ** 2 + sfft.rfftfreq(nc)[None, :] ** 2
    transfer = np.exp(-2 * math.pi**2 * s1_px**2 * f2)
    if math.isfinite(s2_px):
        transfer -= np.exp(-2 * math.pi**2 * s2_px**2 * f2)
    spec = sfft.rfft2(padded, workers=-1)
    spec *= transfer
    return sfft.irfft2(spec, s=(nr, nc), workers=-1)[pad:pad + rows, pad:pad + cols]


def true_roughness(skin: Skin, *, band="scar", border_mm: float = 6.0) -> dict[str, float]:
    """Areal roughness of the true relief in a band, over the patch interior.

    Parameters
    ----------
    skin : Skin
    band : {"scar", "fine"} or (float, float), default "scar"
        A band of :data:`analyzer.registry.BANDS` ("fine" 0.1-0.5 mm, "scar" 0.5-5 mm) or (min_mm, max_mm).
    border_mm : float, default 6.0
        Margin left out on every side (the band filter is unreliable near the patch edge).

    Returns
    -------
    dict
        ``Sq`` (RMS height about the mean, mm), ``Sa`` (mean absolute height, mm) and ``Sdq`` (RMS slope,
        mm/mm, from ``numpy.gradient`` of the band height).
    """
    if isinstance(band, str):
        if band not in BANDS:
            raise OptionError(f"unknown band {band!r}; use one of {', '.join(BANDS)} or (min_mm, max_mm).")
        lo, hi = BANDS[band].min_mm, BANDS[band].max_mm
    else:
        lo, hi = (float(v) for v in band)
    b = band_height(skin, min_mm=lo, max_mm=hi)
    ppm = skin.px_per_mm
    gy, gx = np.gradient(b, 1.0 / ppm)
    m = int(round(border_mm * ppm))
    if 2 * m >= min(b.shape) - 2:
        raise OptionError(f"border_mm={border_mm} leaves nothing of a {skin.size_mm} mm patch; use a smaller border.")
    inner = (slice(m, b.shape[0] - m), slice(m, b.shape[1] - m))
    z = b[inner] - b[inner].mean()
    return {"Sq": float(np.sqrt(np.mean(z * z))), "Sa": float(np.mean(np.abs(z))),
            "Sdq": float(np.sqrt(np.mean(gx[inner] ** 2 + gy[inner] ** 2)))}


#: Reflectance of the card's paper white relative to its sRGB-encoded raster value 255 (matte office paper).
CARD_PAPER_REFLECTANCE = 0.85


def _paste_card(radiance: np.ndarray, capture: Capture) -> np.ndarray:
    """Lay the printed calibration card flat on the skin (Lambertian paper, irradiance 1 like flat skin)."""
    from .card import CARD_LAYOUT, card_image
    from .colour import linearise

    ss = 3  # render the card 3x finer than the photo, then area-sample it down
    ppm = capture.px_per_mm
    raster = card_image(px_per_mm=ppm * ss)
    refl = linearise(raster.astype(np.float32) / 255.0) * np.float32(CARD_PAPER_REFLECTANCE)
    refl = cv2.GaussianBlur(refl, (0, 0), 0.5 * ss)
    cw, ch = CARD_LAYOUT.size_mm
    th = math.radians(capture.card_rotation_deg)
    c, s_ = math.cos(th) / ss, math.sin(th) / ss
    # raster pixel (centre of the card at its middle) -> photo pixel; counter-clockwise on screen (y down)
    rx, ry = (raster.shape[1] - 1) / 2, (raster.shape[0] - 1) / 2
    ux, uy = capture.card_center_mm[0] * ppm - 0.5, capture.card_center_mm[1] * ppm - 0.5
    m = np.array([[c, s_, ux - c * rx - s_ * ry], [-s_, c, uy + s_ * rx - c * ry]])
    out_h, out_w = radiance.shape[:2]
    card = cv2.warpAffine(refl, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    cover = cv2.warpAffine(np.ones(raster.shape[:2], np.float32), m, (out_w, out_h), flags=cv2.INTER_LINEAR)
    return (radiance * (1.0 - cover[..., None]) + card).astype(np.float32)


# --------------------------------------------------------------------------------------------------- samples
#: The demo patient of :func:`make_samples`.
SAMPLE_SEED = 2024
SAMPLE_SEVERITY = 0.6
#: The demo photos show a 90 x 60 mm view at 30 px/mm with the calibration card in the lower right.
SAMPLE_PATCH_MM = (100.0, 75.0)
SAMPLE_CAPTURE = Capture(field_mm=90.0, out_px=(2700, 1800), card_center_mm=(60.0, 40.0), card_rotation_deg=-4.0)

# (file stem, week, scar_depth_scale, freckle count, freckle strength, redness strength, capture seed)
_COURSE = (
    ("week00_baseline", 0, 1.00, 40, 1.00, 0.0, 1000),
    ("week01", 1, 0.97, 40, 1.00, 1.0, 1001),
    ("week06", 6, 0.80, 28, 0.70, 0.0, 1006),
    ("week12", 12, 0.65, 18, 0.45, 0.0, 1012),
)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_sample(path, rgb: np.ndarray, truth: dict, *, quality: int = 92) -> Path:
    """Write ``rgb`` as a JPEG and ``truth`` as a JSON sidecar with the same stem.

    Parameters
    ----------
    path : str or Path
        Destination of the JPEG (``.jpg``); the sidecar is ``path.with_suffix(".json")``.
    rgb : ndarray, shape (H, W, 3), uint8
        RGB photo.
    truth : dict
        JSON-serialisable ground truth (numpy scalars are converted).
    quality : int, default 92
        JPEG quality.

    Returns
    -------
    Path
        The JPEG path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OptionError(f"could not encode {path.name} as JPEG; pass a uint8 (H, W, 3) RGB array.")
    path.write_bytes(buf.tobytes())
    path.with_suffix(".json").write_text(json.dumps(_jsonable(truth), indent=2, ensure_ascii=False) + "\n")
    return path


def _truth(skin: Skin, capture: Capture, **extra) -> dict:
    u, v = to_photo_px(skin, capture, [s.x_mm for s in skin.scars], [s.y_mm for s in skin.scars])
    w, h = capture.out_px
    ppm = capture.px_per_mm
    scars = [
        {"kind": s.kind, "x_px": round(float(x), 2), "y_px": round(float(y), 2), "x_mm": round(s.x_mm, 3),
         "y_mm": round(s.y_mm, 3), "diameter_mm": round(s.diameter_mm, 4), "diameter_px": round(s.diameter_mm * ppm, 2),
         "depth_mm": round(s.depth_mm, 4)}
        for s, x, y in zip(skin.scars, u, v) if -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5
    ]
    return {
        **extra,
        "seed": skin.seed, "severity": skin.severity, "scar_depth_scale": skin.scar_depth_scale,
        "px_per_mm": ppm,
        "photo_light_azimuth_deg": capture.photo_light_azimuth_deg,
        "capture": asdict(capture),
        "patch_size_mm": list(skin.size_mm),
        "patch_to_photo_matrix": patch_to_photo_matrix(skin, capture).round(6).tolist(),
        "true": {name: true_roughness(skin, band=name) for name in ("scar", "fine")},
        "true_units": {"Sq": "mm", "Sa": "mm", "Sdq": "mm/mm"},
        "pores_per_cm2": skin.pores_per_cm2,
        "n_scars_patch": len(skin.scars),
        "scars": scars,
    }


def make_samples(out_dir) -> list[Path]:
    """Write the demo course of one synthetic patient (JPEG + JSON sidecar of the true parameters).

    Files: ``week00_baseline`` (scar depth x1.00), ``week01`` (x0.97, post-needling redness), ``week06``
    (x0.80), ``week12`` (x0.65) -- freckles fading (fewer, fainter) along the course, each photo a
    :func:`recapture` with its own fixed seed -- and ``bad_blurry`` (baseline skin, blur 0.25 mm,
    exposure 2.5: must fail a quality gate). True roughness in the sidecars is over the whole patch interior.

    Returns
    -------
    list of Path
        The written files, each JPEG followed by its sidecar.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_skin = make_skin(seed=SAMPLE_SEED, severity=SAMPLE_SEVERITY, size_mm=SAMPLE_PATCH_MM)

    def visit_capture(seed: int) -> Capture:
        rng = np.random.default_rng(seed)
        cap = recapture(rng, base=SAMPLE_CAPTURE, size_mm=SAMPLE_PATCH_MM)
        # the card is laid down anew at each visit
        cx, cy = SAMPLE_CAPTURE.card_center_mm
        return replace(cap, card_center_mm=(cx + rng.uniform(-3, 3), cy + rng.uniform(-2, 2)),
                       card_rotation_deg=float(rng.uniform(-6, 6)))

    written: list[Path] = []

    def emit(stem, skin, cap, **extra):
        rgb = render(skin, replace(cap, jpeg_quality=None), seed=int(extra.get("capture_seed", 0)))
        jpg = save_sample(out_dir / f"{stem}.jpg", rgb, _truth(skin, cap, file=f"{stem}.jpg", **extra),
                          quality=cap.jpeg_quality or 95)
        written.extend([jpg, jpg.with_suffix(".json")])

    for stem, week, scale, n_fr, s_fr, red, cap_seed in _COURSE:
        skin = scale_scars(base_skin, scale)
        skin = add_freckles(skin, seed=SAMPLE_SEED, count=n_fr, strength=s_fr)
        if red > 0:
            skin = add_redness(skin, strength=red, seed=SAMPLE_SEED + week)
        cap = visit_capture(cap_seed)
        emit(stem, skin, cap, week=week, capture_seed=cap_seed, freckles={"count": n_fr, "strength": s_fr},
             redness_strength=red)
    skin = add_freckles(base_skin, seed=SAMPLE_SEED, count=40, strength=1.0)
    cap = replace(visit_capture(1099), blur_mm=0.25, exposure=2.5)
    emit("bad_blurry", skin, cap, week=0, capture_seed=1099, freckles={"count": 40, "strength": 1.0},
         redness_strength=0.0, expected="fails the quality gate: blur 0.25 mm and overexposure x2.5")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", metavar="DIR", required=True, help="write the demo photos and sidecars here")
    args = parser.parse_args(argv)
    for p in make_samples(args.samples):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
