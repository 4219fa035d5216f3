"""Relief proxy maps at physical scale.

Under a directional light, the pigment-free log shading ``s`` of a Lambertian surface is, to first order, the
slope of the relief along the light's azimuth ``d`` scaled by the light's obliquity::

    s(x) ≈ -t * ∂h/∂d,      t = (1 - ambient) * tan(zenith)

so the shading *is* a slope map of the relief (Horn 1989). We

1. resample the photo to ``ANALYSIS_PX_PER_MM`` (0.1 mm pixels: the smallest feature we report is 0.1 mm);
2. band-pass the shading into the documented bands (difference of Gaussians; features of 0.1–0.5 mm = fine,
   0.5–5 mm = scar; larger = facial form and illumination, removed);
3. report the RMS slope per band. For an isotropic relief ``E[(∂h/∂d)²] = Sdq² / 2`` whatever the light's azimuth,
   so ``100 * √2 * RMS(s_band)`` equals ``100 * t * Sdq`` of the band: the roughness index;
4. estimate the light azimuth from the anisotropy of the shading (structure tensor) and integrate the slope along
   it (regularised Fourier integration) into a *height proxy* in mm for a nominal light (t = 1, i.e. 45°, no
   ambient). The proxy feeds the ISO 25178 parameters, the scar detector and the maps; its absolute scale is only
   as good as the nominal light assumption (bas-relief ambiguity, Belhumeur et al. 1999): compare photos taken
   with the same lighting.

References
----------
.. [1] B. K. P. Horn, "Height and gradient from shading", Int. J. Computer Vision 5, 37–75 (1990).
.. [2] P. N. Belhumeur, D. J. Kriegman, A. L. Yuille, "The bas-relief ambiguity", IJCV 35, 33–44 (1999).
.. [3] R. T. Frankot, R. Chellappa, "A method for enforcing integrability in shape from shading algorithms",
       IEEE PAMI 10, 439–451 (1988).
.. [4] T. Lindeberg, "Feature detection with automatic scale selection", IJCV 30, 79–116 (1998).
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.fft

from . import filters
from .registry import BANDS, FORM_MM

__all__ = [
    "ANALYSIS_PX_PER_MM", "NOMINAL_TAN_ZENITH", "to_analysis_grid", "ReliefMaps", "relief_maps",
    "light_azimuth", "integrate_slope", "robust_std", "measured_mask",
]

#: Resolution every photo is analysed at (px/mm). Finer photos are reduced to it (area averaging).
ANALYSIS_PX_PER_MM = 10.0
#: Light obliquity assumed when turning slopes into heights (tan 45° = 1, no ambient light).
NOMINAL_TAN_ZENITH = 1.0
#: Fewer valid pixels than this (after the border) and a photo has nothing to measure.
_MIN_PIXELS = 100
#: Regularisation of the directional integration (share of the across-light frequency kept).
_EPS = 0.25


def to_analysis_grid(rgb: np.ndarray, *, px_per_mm: float,
                     target_px_per_mm: float = ANALYSIS_PX_PER_MM) -> tuple[np.ndarray, float]:
    """Resample an image to the analysis resolution (never upsampled).

    Parameters
    ----------
    rgb : (H, W[, C]) float32
    px_per_mm : float
        Scale of ``rgb``.

    Returns
    -------
    resampled : ndarray
    px_per_mm : float
        Scale of the resampled image (exact, from the integer output size).
    """
    f = target_px_per_mm / px_per_mm
    if f >= 1.0:
        return rgb, px_per_mm
    h, w = rgb.shape[:2]
    nw, nh = max(1, round(w * f)), max(1, round(h * f))
    out = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, px_per_mm * nw / w


def robust_std(x: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (Gaussian-consistent)."""
    # A float32 map stays float32: half the time of a float64 copy, and the result differs by float32 rounding
    # (~1e-7 relative) only. Other inputs are computed in float64, exactly as ``np.median`` would.
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False).ravel()
    if x.size == 0:
        return float("nan")
    dev = x - filters.median(x)
    np.abs(dev, out=dev)
    return float(1.4826 * float(filters.median(dev)))


def light_azimuth(slope: np.ndarray, *, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Axis of the light's azimuth (mod 180°) and how directional the shading is.

    The shading of an isotropic relief under a light from azimuth ``d`` varies along ``d`` only; the structure
    tensor of its gradient has its principal axis along ``d``.

    Returns
    -------
    azimuth_deg : float
        In [0, 180): 0 = light from image right, 90 = from image top (sign resolved by :func:`relief_maps`).
    anisotropy : float
        (λ1 − λ2)/(λ1 + λ2) of the tensor: ≈ 0.5 for one oblique light on isotropic relief, → 0 for flat/frontal
        or diffuse light (no usable relief shading).
    """
    gx = cv2.Sobel(slope, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(slope, cv2.CV_32F, 0, 1, ksize=3)
    w = np.ones(slope.shape, bool) if mask is None else mask
    if not w.any():
        return float("nan"), 0.0
    # The tensor's mean over the mask, from the selected gradients (no product maps).
    sx, sy = gx[w], gy[w]
    jxx, jyy, jxy = (float(np.einsum("i,i->", a, b)) / sx.size for a, b in ((sx, sx), (sy, sy), (sx, sy)))
    theta = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))  # axis angle in (x, row) coordinates
    tr = jxx + jyy
    aniso = float(np.hypot(jxx - jyy, 2 * jxy) / tr) if tr > 0 else 0.0
    return float((-theta) % 180.0), aniso


def integrate_slope(slope: np.ndarray, *, px_per_mm: float, azimuth_deg: float,
                    tan_zenith: float = NOMINAL_TAN_ZENITH, eps: float = _EPS) -> np.ndarray:
    """Height (mm) whose slope along the light azimuth matches ``slope`` (= -t ∂h/∂d).

    Regularised Fourier integration: ``ĥ = i ω_d Ŝ / (t (ω_d² + ε² |ω|²))``; the ε term damps the frequencies
    across the light direction, which shading cannot see. The map is zero-padded to limit wrap-around.
    """
    h, w = slope.shape
    fh = scipy.fft.next_fast_len(h + h // 4, real=True)
    fw = scipy.fft.next_fast_len(w + w // 4, real=True)
    spec = scipy.fft.rfft2(slope.astype(np.float32, copy=False), s=(fh, fw), workers=-1)
    spec *= _integration_filter(fh, fw, round(float(azimuth_deg), 6), float(eps))
    height_px = scipy.fft.irfft2(spec, s=(fh, fw), workers=-1)[:h, :w]
    return (height_px * np.float32(1.0 / (tan_zenith * px_per_mm))).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _frequencies(fh: int, fw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular frequencies of the rfft2 grid: ``wy`` (fh, 1), ``wx`` (1, fw//2+1) and ``|ω|²``, float32."""
    wy = (2 * np.pi * scipy.fft.fftfreq(fh)).astype(np.float32)[:, None]
    wx = (2 * np.pi * scipy.fft.rfftfreq(fw)).astype(np.float32)[None, :]
    w2 = wx * wx + wy * wy
    for a in (wy, wx, w2):
        a.setflags(write=False)
    return wy, wx, w2


@functools.lru_cache(maxsize=4)  # 3.4 MB each on a close-up; a comparison integrates along two azimuths
def _integration_filter(fh: int, fw: int, azimuth_deg: float, eps: float) -> np.ndarray:
    """``i ω_d / (ω_d² + ε² |ω|²)`` on the rfft2 grid (complex64), cached per shape and azimuth.

    Every photo has its own light azimuth, so this is computed once per photo: in float32 from the frequencies
    kept per shape (a third of the time of the float64 expression; the filter is applied in complex64 anyway).
    """
    wy, wx, w2 = _frequencies(fh, fw)
    az = np.radians(azimuth_deg)
    wd = wx * np.float32(np.cos(az)) - wy * np.float32(np.sin(az))  # row axis points down; 90° = light from top
    den = wd * wd
    den += np.float32(eps * eps) * w2
    den[0, 0] = 1.0
    np.divide(wd, den, out=den)
    den[0, 0] = 0.0
    filt = np.zeros(den.shape, np.complex64)
    filt.imag = den
    filt.setflags(write=False)
    return filt


@dataclass(frozen=True)
class ReliefMaps:
    """Relief proxy of one photo on the analysis grid.

    Attributes
    ----------
    px_per_mm : float
        Scale of every map here.
    mask : (H, W) bool
        Pixels that count (valid skin, away from the borders).
    slope : dict[str, (H, W) float32]
        Band-passed shading per band (log units ≈ -t ∂h/∂d).
    height : dict[str, (H, W) float32]
        Height proxy per band, mm, at nominal light (t = 1).
    light_azimuth_deg : float
        Light azimuth estimated from this photo, in [0, 360): 0 = from image right, 90 = from image top.
    light_anisotropy : float
        Directionality of the shading (see :func:`light_azimuth`).
    integrated_along_deg : float
        Azimuth the height proxy was integrated along (the estimate, or the one imposed by the caller).
    """

    px_per_mm: float
    mask: np.ndarray
    slope: dict = field(default_factory=dict)
    height: dict = field(default_factory=dict)
    light_azimuth_deg: float = float("nan")
    light_anisotropy: float = float("nan")
    integrated_along_deg: float = float("nan")


def measured_mask(valid: np.ndarray, *, px_per_mm: float) -> np.ndarray:
    """Pixels that count in :func:`relief_maps` (``ReliefMaps.mask``): valid ones away from the borders of the
    photo and of the invalid areas (the form filter's reach). A new array on every call."""
    valid = np.asarray(valid, bool)
    border = max(2, int(round(filters.size_to_sigma_px(FORM_MM, px_per_mm) * 0.75)))
    if valid.all():
        return _border_mask(valid, border)
    # The erosion by a disc (~2 ms) is remembered by the mask's content: a comparison measures both photos over
    # one common mask, and analyse needs the result before relief_maps does.
    key = (valid.shape, border, np.packbits(valid).tobytes())
    with _measured_lock:
        hit = _measured_cache.get(key)
    if hit is None:
        hit = _border_mask(valid, border)
        with _measured_lock:
            _measured_cache[key] = hit
            while len(_measured_cache) > 4:
                _measured_cache.pop(next(iter(_measured_cache)))
    return hit.copy()


_measured_cache: dict = {}
_measured_lock = threading.Lock()


def _border_mask(valid: np.ndarray, border_px: int) -> np.ndarray:
    m = valid.copy()
    m[:border_px, :] = m[-border_px:, :] = False
    m[:, :border_px] = m[:, -border_px:] = False
    if not valid.all():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border_px + 1,) * 2)
        m &= cv2.erode(valid.astype(np.uint8), k).astype(bool)
    return m


def _bands(img: np.ndarray, *, px_per_mm: float, mask: np.ndarray) -> dict:
    """Every band of :data:`BANDS` as a difference of Gaussians, each Gaussian computed once.

    Adjacent bands share an edge (0.5 mm), so this takes three blurs where one band_pass per band takes four;
    the values are those of :func:`analyzer.filters.band_pass`.
    """
    edges = sorted({e for b in BANDS.values() for e in (b.min_mm, b.max_mm)})
    smooth = filters.gaussians(img, [filters.size_to_sigma_px(e, px_per_mm) for e in edges], mask=mask)
    g = dict(zip(edges, smooth))
    return {name: g[b.min_mm] - g[b.max_mm] for name, b in BANDS.items()}


def relief_maps(shading: np.ndarray, *, px_per_mm: float, valid: np.ndarray | None = None,
                azimuth_deg: float | None = None) -> ReliefMaps:
    """Band-pass the pigment-free shading into slope and height-proxy maps.

    Parameters
    ----------
    shading : (H, W) float32
        Pigment-free log shading on the analysis grid (:func:`analyzer.colour.separate`).
    px_per_mm : float
        Scale of ``shading``.
    valid : (H, W) bool, optional
        Trusted pixels (not clipped, not glare, not the card).
    azimuth_deg : float, optional
        Light azimuth to integrate along (e.g. the baseline's, for a comparison); estimated when omitted.
    """
    if valid is None:
        valid = np.ones(shading.shape, bool)
    # Large-scale illumination and facial form: removed by the top of the scar band (FORM_MM).
    flat = (shading - filters.gaussian(shading, filters.size_to_sigma_px(FORM_MM, px_per_mm), mask=valid)
            ).astype(np.float32, copy=False)
    if not valid.all():
        flat[~valid] = 0.0
    mask = measured_mask(valid, px_per_mm=px_per_mm)
    slope = _bands(flat, px_per_mm=px_per_mm, mask=valid)
    if mask.sum() < _MIN_PIXELS:  # nothing to measure: empty maps, no light estimate (the caller reports it)
        zeros = {name: np.zeros(shading.shape, np.float32) for name in BANDS}
        return ReliefMaps(px_per_mm=px_per_mm, mask=mask, slope=slope, height=zeros,
                          light_azimuth_deg=float("nan"), light_anisotropy=0.0,
                          integrated_along_deg=float("nan") if azimuth_deg is None else float(azimuth_deg))
    # Scar-band shading: round pits are isotropic, so its anisotropy is the light's; skin lines (fine band) are not.
    axis, aniso = light_azimuth(slope["scar"], mask=mask)

    def heights(along: float) -> dict:
        # One integration of the flattened shading, then the same band-pass as the slopes (both are linear).
        h_flat = integrate_slope(flat, px_per_mm=px_per_mm, azimuth_deg=along)
        return _bands(h_flat, px_per_mm=px_per_mm, mask=valid)

    height = heights(axis)
    # Shading fixes the light axis, not its sign; skin relief is dominated by pits (pores, scars): choose the
    # sign that makes the height proxy skew negative. Turning the azimuth by 180° exactly negates the integral.
    hv = sum(height.values())[mask]
    d = hv - hv.mean()
    skew = float(np.mean(d * d * d)) if hv.size else 0.0  # (not d ** 3: numpy's power is ~20x slower)
    own = axis
    if skew > 0:
        own = (axis + 180.0) % 360.0
        height = {k: -v for k, v in height.items()}
    if azimuth_deg is None:
        azimuth_deg = own
    elif abs((azimuth_deg - own + 180.0) % 360.0 - 180.0) > 1e-6:
        height = heights(azimuth_deg)
    return ReliefMaps(px_per_mm=px_per_mm, mask=mask, slope=slope, height=height,
                      light_azimuth_deg=float(own), light_anisotropy=aniso, integrated_along_deg=float(azimuth_deg))
