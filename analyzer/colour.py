"""Colour is not relief: separate shading (which carries relief) from pigment.

Skin reflectance follows the Beer–Lambert law: each chromophore (melanin, haemoglobin) multiplies the
reflected light by ``exp(-c * od)`` with a per-channel optical density ``od``. Illumination multiplies all
channels equally (white light) or by a constant per channel (white balance, exposure). In the logarithm of
*linear* RGB every factor becomes a sum::

    log RGB(x) = -c_m(x) * od_m - c_h(x) * od_h + s(x) * (1, 1, 1) + const

where ``s`` is the shading (log-irradiance: relief slopes under directional light, plus large-scale
illumination). Tsumura et al. show that skin colour lies on the plane spanned by the two pigment vectors; the
shading moves every channel equally. We write log RGB in an orthonormal basis: the achromatic axis
``(1, 1, 1) / 3`` (the mean log channel, ``a``) and two chroma axes (``c1, c2``) that shading cannot reach. Pigment
moves the chroma *and* darkens the achromatic axis by an amount linear in the chroma change, so

    a = s + k1 * c1 + k2 * c2 + const.

The coefficients ``k`` are estimated per photo by regression of the high-passed achromatic channel on the
high-passed chroma, ridge-regularised towards the value implied by literature pigment vectors. Subtracting ``k·c``
leaves the pigment-free shading ``s``. This needs no exact pigment spectra, and a white-balance cast or exposure
only adds constants, which the band-pass removes.

Relief shading is achromatic but *not* uncorrelated with chroma when the colour sits in the relief: red or brown
acne scars are pigmented where they are deep, and a pit under a side light is darker as a whole as well as
bright/dark on its two walls (Lambert's law is not linear in the slope: its even, second-order part). A plain
regression takes that darkening for pigment, so a red pit reads shallower than the same pit faded. The estimate
therefore (1) weights each pixel by how little relief shading it holds (``1 / (1 + (ρ/ρ_med)^4)``, ``ρ`` the local
size of the shading left after the prior leak), so the pits themselves count little and the skin around them
carries it; and (2) adds the square of the shading (band-passed) as a nuisance regressor that takes the pits' own
even darkening. Neither is subtracted: only ``k·c`` is.

Pigment maps (melanin, haemoglobin) come from the chroma by inverting the 2×2 projection of the literature
pigment vectors; they feed the pigment metrics, never the roughness.

References
----------
.. [1] N. Tsumura, H. Haneishi, Y. Miyake, "Independent-component analysis of skin color image",
       J. Opt. Soc. Am. A 16(9), 2169–2176 (1999).
.. [2] N. Tsumura et al., "Image-based skin color and texture analysis/synthesis by extracting hemoglobin and
       melanin information in the skin", ACM Trans. Graph. 22(3), 770–779 (2003).
.. [3] IEC 61966-2-1:1999, sRGB colour space (transfer function).
.. [4] J. B. Dawson et al., "A theoretical and experimental study of light absorption and scattering by in vivo
       skin", Phys. Med. Biol. 25, 695–709 (1980) (melanin and erythema indices).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import filters
from .errors import OptionError

__all__ = [
    "MELANIN_OD", "HAEMOGLOBIN_OD", "linearise", "encode_srgb", "log_rgb", "Separation", "separate",
]

#: Literature-shaped optical-density vectors (R, G, B) per unit concentration: melanin absorbs more at short
#: wavelengths (≈ λ^-3.5), oxy-haemoglobin absorbs green and blue (Q and Soret bands) and little red.
#: They are priors only: the achromatic leak of pigment is re-estimated on every photo.
MELANIN_OD = np.array([1.0, 1.45, 2.5])
HAEMOGLOBIN_OD = np.array([0.1, 1.0, 0.7])

# Orthonormal basis of log-RGB: achromatic axis and two chroma axes.
_ACHRO = np.ones(3) / 3.0                       # a = mean of log channels
_C1 = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)   # red-green
_C2 = np.array([1.0, 1.0, -2.0]) / np.sqrt(6)   # yellow-blue
_CHROMA = np.stack([_C1, _C2])                  # (2, 3)

#: Chroma contrast (natural-log units, scar band) below which a photo is taken to show no pigment pattern: the
#: pigment-leak estimate then stays near the literature prior instead of fitting noise. Plain skin in a JPEG
#: shows 0.006-0.012 of chroma (subsampled, quantised chroma correlated with the shading); freckles 0.03-0.06.
CHROMA_FLOOR = 0.012

#: Linear values below this are treated as black when taking logs (≈ 1/2 code value of 8-bit sRGB).
LOG_FLOOR = 1.0 / 4096.0


def linearise(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear light (IEC 61966-2-1), float32, same shape."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def encode_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] → sRGB-encoded float32 (inverse of :func:`linearise`)."""
    lin = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055).astype(np.float32)


def log_rgb(rgb: np.ndarray) -> np.ndarray:
    """Natural log of linear RGB, (H, W, 3) float32; dark pixels are floored at :data:`LOG_FLOOR`.

    Computed straight from the sRGB values (``log(((v + 0.055) / 1.055) ** 2.4)`` = ``2.4 * log(...)``), which
    avoids the power function: same numbers as ``log(linearise(rgb))``, a third of the time.
    """
    v = np.asarray(rgb, dtype=np.float32)
    out = np.log((v + np.float32(0.055)) * np.float32(1 / 1.055)) * np.float32(2.4)
    dark = v <= 0.04045
    if dark.any():
        out[dark] = np.log(np.maximum(v[dark] * np.float32(1 / 12.92), np.float32(LOG_FLOOR)))
    return out


def _prior_leak() -> np.ndarray:
    """Achromatic leak coefficients k implied by the literature pigment vectors."""
    p = -np.stack([MELANIN_OD, HAEMOGLOBIN_OD])  # log-RGB change per unit concentration, (2 pigments, 3)
    chroma = p @ _CHROMA.T                        # (2 pigments, 2 chroma)
    achro = p @ _ACHRO                            # (2 pigments,)
    return np.linalg.solve(chroma, achro)


_K_PRIOR = _prior_leak()
#: Strength of band-passed chroma (natural-log units, smoothed at 0.5 mm) that marks a pigment pattern rather
#: than noise; patterns reach full correction at twice this. JPEG's chroma error (subsampled, coarsely quantised
#: chroma around sharp relief edges) reaches ~0.02 on plain skin; freckles, spots and blotches of redness reach
#: 0.03-0.1 and get the full correction over their whole extent plus PIGMENT_MARGIN_MM.
CHROMA_NOISE = 0.025
#: Pixels sampled for the pigment-leak regression (a strided subset; the fit has two unknowns).
_REGRESSION_SAMPLES = 60_000
#: The leak estimate may run on a reduced grid, but never coarser than this (px/mm: 0.5 mm features keep ~2 px).
_REGRESSION_MIN_PX_PER_MM = 4.0
#: Pigment patterns get the full correction this far (mm) beyond their detected edge.
PIGMENT_MARGIN_MM = 1.5
#: A photo's chroma is coarser than its pixels: demosaicing interpolates colour over the Bayer pattern, and JPEG
#: keeps chroma at half resolution (4:2:0) and quantises it in 16-px blocks. The chroma subtracted from the
#: shading is therefore smoothed with a Gaussian of this σ in the photo's own pixels (about a quarter of a chroma
#: block). On the real photos of tests/data/real (9-35 px/mm) saving again at JPEG quality 70 moved the index by
#: up to +10 % through the chroma alone (the luma alone: ≤ 1.1 %); with σ = 2, 3, 3.5, 4 px by up to 8.8, 5.7,
#: 4.5, 3.7 %. 4 px let one photo's added freckles (on its own pigment axes) move it by 5.2 %, 3.5 px by ≤ 4.1 %.
#: On a 12 MP close-up (~60 px/mm) σ is 0.06 mm, half a grid pixel: a 12 MP render reads the same to 0.01 %.
SOURCE_CHROMA_SIGMA_PX = 3.5


def chroma_sigma_mm(source_px_per_mm: float | None) -> float:
    """σ (mm) of the smoothing of the chroma subtracted from the shading, for a photo of this scale (file px/mm;
    None: no smoothing, e.g. an array made at the analysis grid)."""
    if source_px_per_mm is None or not np.isfinite(source_px_per_mm) or source_px_per_mm <= 0:
        return 0.0
    return SOURCE_CHROMA_SIGMA_PX / float(source_px_per_mm)


def _pigment_pattern(chroma: list, *, px_per_mm: float, mask, highpass_mm: float, chroma_sigma_mm: float = 0.0):
    """``(low, band, weight)``: the chroma maps' form (> ``highpass_mm``), their band below it (smoothed with
    σ = ``chroma_sigma_mm``: :data:`SOURCE_CHROMA_SIGMA_PX`), and where the leak correction applies (0-1).

    Correct only where there is a pigment pattern. Between pigment patches the band-passed chroma is JPEG's
    quantised, subsampled chroma and sensor noise; subtracting k·chroma there would add that noise to the
    shading (|k| ~ 1.5). Pigment patches (freckles, spots, blotches of redness) stand several noise levels
    above it: they, plus a margin of PIGMENT_MARGIN_MM, get the full correction, with soft edges.
    """
    sigma_form = filters.size_to_sigma_px(highpass_mm, px_per_mm)
    sigma_half = filters.size_to_sigma_px(0.5, px_per_mm)
    low = filters.gaussians(chroma, [sigma_form], mask=mask)
    low = [lo[0] for lo in low]
    band = [c - lo for c, lo in zip(chroma, low)]
    s0, s1 = (filters.gaussian(b, sigma_half) for b in band)
    weight = np.clip(np.sqrt(s0 * s0 + s1 * s1) * np.float32(1 / CHROMA_NOISE) - 1.0, 0.0, 1.0)
    r = max(1, int(round(PIGMENT_MARGIN_MM * px_per_mm)))
    weight = cv2.dilate(weight.astype(np.float32), np.ones((2 * r + 1, 2 * r + 1), np.uint8))  # separable: fast
    sigma_chroma = chroma_sigma_mm * px_per_mm
    if sigma_chroma >= 0.3:  # (where the patterns are was found on the unsmoothed band: the same patterns)
        band = filters.gaussians(band, [sigma_chroma], mask=mask)
        band = [b[0] for b in band]
    return low, band, filters.gaussian(weight, r / 2.0)


_UNMIX = np.linalg.inv(-np.stack([MELANIN_OD, HAEMOGLOBIN_OD]) @ _CHROMA.T)  # chroma -> (melanin, haemoglobin)


@dataclass(frozen=True)
class Separation:
    """Pigment/shading separation of one photo.

    Attributes
    ----------
    shading : (H, W) float32
        Pigment-free log shading (natural-log units; 0.01 ≈ 1 % brightness change).
    melanin, haemoglobin : (H, W) float32
        Relative pigment concentrations (unit = the literature vectors' unit; offsets depend on white balance).
    leak : (2,) float
        Estimated achromatic leak coefficients ``k`` of the two chroma axes.
    """

    shading: np.ndarray
    melanin: np.ndarray
    haemoglobin: np.ndarray
    leak: np.ndarray


def separate(rgb: np.ndarray, *, px_per_mm: float, mask: np.ndarray | None = None,
             highpass_mm: float = 5.0, ridge: float = 0.05, white_balance=None, chroma_sigma_mm: float = 0.0,
             executor=None) -> Separation:
    """Split a photo into pigment-free shading and pigment concentration maps.

    Parameters
    ----------
    rgb : (H, W, 3) float32
        sRGB-encoded photo in [0, 1] (as :func:`analyzer.load_image` returns).
    px_per_mm : float
        Pixel scale of ``rgb``.
    mask : (H, W) bool, optional
        Pixels to trust (e.g. not clipped, not glare, not the calibration card).
    highpass_mm : float
        Structures larger than this (illumination, facial form) are ignored when estimating the pigment leak.
    ridge : float
        Strength of the pull of ``k`` towards the literature prior, relative to the chroma variance.
    white_balance : (r, g, b), optional
        Linear gains that make the photo neutral (from the calibration card). They only shift the pigment maps
        by a constant (exactly, in this log domain), making the erythema index comparable between photos; the
        shading does not depend on them.
    chroma_sigma_mm : float
        σ (mm) of a Gaussian smoothing of the chroma before ``k·chroma`` is subtracted from the shading: the
        photo's chroma is not resolved at its finest pixels (:func:`chroma_sigma_mm` of its own scale). 0: none.
    executor : concurrent.futures.Executor, optional
        Where to compute the pigment-pattern weight (independent of the leak estimate) meanwhile; the result
        is the same.

    Returns
    -------
    Separation
    """
    if not (np.isfinite(chroma_sigma_mm) and chroma_sigma_mm >= 0):
        raise OptionError(f"chroma_sigma_mm must be a finite σ ≥ 0 in mm (colour.chroma_sigma_mm of the photo's "
                         f"scale), got {chroma_sigma_mm!r}")
    logs = log_rgb(rgb)
    # Channel arithmetic rather than `logs @ basis`: a (N, 3) @ (3, k) product goes through threaded BLAS,
    # which stalls for tens of ms on a busy machine for no gain.
    l0, l1, l2 = logs[..., 0], logs[..., 1], logs[..., 2]
    achro = (l0 + l1 + l2) * np.float32(1 / 3)
    chroma = [(l0 - l1) * np.float32(_C1[0]), (l0 + l1 - 2 * l2) * np.float32(_C2[0])]  # two (H, W) maps
    # Where to correct (the pigment patterns, below) does not depend on the leak k: with an executor it is found
    # on another thread while k is estimated.
    where = executor.submit(_pigment_pattern, chroma, px_per_mm=px_per_mm, mask=mask, highpass_mm=highpass_mm,
                            chroma_sigma_mm=chroma_sigma_mm) if executor is not None else None

    # Regression in the scar band (0.5-5 mm): pigment patches (freckles, blotches of redness) live there, while
    # the finest scales carry JPEG's subsampled chroma and sensor noise, which would bias k. The ridge pulls k to
    # the prior when the photo has little pigment contrast (chroma spread near CHROMA_FLOOR).
    # On large photos the estimate runs on a grid reduced by area averaging (never coarser than
    # _REGRESSION_MIN_PX_PER_MM): k has two unknowns, and the band-passes below cost a full-size map each.
    f = max(1, min(int(np.sqrt(achro.size / _REGRESSION_SAMPLES)), int(px_per_mm // _REGRESSION_MIN_PX_PER_MM)))
    if f > 1:
        hh, ww = (achro.shape[0] // f) * f, (achro.shape[1] // f) * f

        def reduce(x):
            return cv2.resize(np.ascontiguousarray(x[:hh, :ww]), (ww // f, hh // f), interpolation=cv2.INTER_AREA)

        r_achro, r_chroma = reduce(achro), [reduce(c) for c in chroma]
        r_mask = None if mask is None else reduce(mask.astype(np.float32)) > 0.99
    else:
        r_achro, r_chroma, r_mask = achro, chroma, mask
    r_ppm = px_per_mm / f

    def scar_band(x):
        return filters.band_pass(x, px_per_mm=r_ppm, min_mm=0.5, max_mm=highpass_mm, mask=r_mask)

    #
    # Colour inside the scars (red or brown pits) is where a plain regression fails: a pit under a side light is
    # not only bright on one wall and dark on the other (the directional part of its shading, odd about its
    # centre along the light), it is also darker as a whole (Lambert's law is not linear in the slope:
    # log E ≈ t·g − (t·g)²/2 − |∇h|²/2, an even part). Pigment that follows the pit is even too, so the
    # regression would take "dark because it is a pit" for "dark because it is red", over-correct, and the pit
    # would read shallower while it is red (and rougher once the redness fades). Two guards, both from the
    # physics of one photo:
    # 1. relief is where the shading is strong: each pixel is weighted by 1 / (1 + (ρ/ρ_med)^4), ρ the local
    #    (1 mm) size of the shading left after the prior pigment leak. Pigment patterns away from relief (and the
    #    pigment of the skin around the scars) carry the estimate; the pits themselves count little;
    # 2. the even part of the shading is, to second order, the square of its directional part: a third regressor
    #    q = band(r²) takes that darkening where relief still counts. It is a nuisance term: the relief's
    #    darkening stays in the shading, only k·chroma is subtracted.
    step = max(1, int(np.sqrt(r_achro.size / _REGRESSION_SAMPLES)))
    sel = (np.ones(r_achro.shape, bool) if r_mask is None else r_mask)[::step, ::step]
    y_map = scar_band(r_achro)
    x_maps = [scar_band(c) for c in r_chroma]
    r = y_map - x_maps[0] * np.float32(_K_PRIOR[0]) - x_maps[1] * np.float32(_K_PRIOR[1])
    q_map = scar_band(r * r)
    rho = filters.gaussian(np.abs(r), filters.size_to_sigma_px(1.0, r_ppm), mask=r_mask)[::step, ::step][sel]
    rho_med = float(filters.median(rho)) if rho.size else 0.0
    w = 1.0 / (1.0 + (rho.astype(np.float64) / max(rho_med, 1e-6)) ** 4)
    y = y_map[::step, ::step][sel].astype(np.float64)
    # Weighted normal equations from one-dimensional columns (two-operand einsum: SIMD sums, no threaded BLAS;
    # half the time of one (N, 3) three-operand einsum).
    cols = [m[::step, ::step][sel].astype(np.float64) for m in (*x_maps, q_map)]
    wcols = [c * w for c in cols]
    xtx = np.empty((3, 3))
    for i in range(3):
        for j in range(i, 3):
            xtx[i, j] = xtx[j, i] = np.einsum("n,n->", wcols[i], cols[j])
    xty = np.array([np.einsum("n,n->", wc, y) for wc in wcols])
    floor = np.array([CHROMA_FLOOR**2, CHROMA_FLOOR**2, 0.0])  # chroma axes pulled to the prior; q is free
    lam = np.diag(ridge * np.diag(xtx) + w.sum() * floor + 1e-9)
    prior = np.array([*_K_PRIOR, 0.0])
    k = np.linalg.solve(xtx + lam, xty + lam @ prior)[:2]

    low, band, weight = where.result() if where is not None else \
        _pigment_pattern(chroma, px_per_mm=px_per_mm, mask=mask, highpass_mm=highpass_mm,
                         chroma_sigma_mm=chroma_sigma_mm)
    shading = achro
    for i in range(2):
        shading = shading - (low[i] + band[i] * weight) * np.float32(k[i])
    u = _UNMIX.astype(np.float32)
    pig = [chroma[0] * u[0, j] + chroma[1] * u[1, j] for j in range(2)]
    if white_balance is not None:  # a gain g adds log(g) to each log channel: its chroma, unmixed
        shift = (_CHROMA @ np.log(np.asarray(white_balance, np.float64))) @ _UNMIX
        pig = [pig[j] + np.float32(shift[j]) for j in range(2)]
    return Separation(shading=shading.astype(np.float32), melanin=pig[0], haemoglobin=pig[1], leak=k)
