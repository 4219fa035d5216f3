"""The one registry of Relief's metrics: name, unit, band and meaning.

The CLI, the JSON output, the dashboard and the docs read names, units and meanings from here;
nothing else re-types them.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Band", "BANDS", "Metric", "METRICS", "metric", "ScarClass", "SCAR_CLASSES", "ALGORITHM_VERSION"]

#: Bump whenever a change can move any number; stored measurements are recomputed when it changes.
#: 1.2.0: without a card or a given scale the long side (not the width) spans the default 60 mm.
#: 1.2.1: the light's axis is summed in float32 (metrics move by up to 2e-5 relative) and strongly compressed
#: JPEGs carry a warning, which stored measurements hold.
#: 1.2.2: the ISO 25178 parameters of the (float32) height maps are computed in float32 with float64 sums, and
#: Sdr from each triangle's excess area (they move by up to 1e-5 relative; the roughness index does not move);
#: a strongly correlated pair is aligned with 6 feature matches instead of 12 (pairs refused before now compare).
#: 1.2.3: no number moves; a comparison's consistency check says how the photos were taken *differently*
#: (``differences``, ``taken_alike``), which the pages, the report and the export show: results stored by 1.2.2
#: lack it and are computed again.
#: 1.3.0: the chroma subtracted from the shading is smoothed over a few of the photo's own pixels (its colour is
#: coarser than its pixels: demosaicing, JPEG's 4:2:0 chroma in 16-px blocks); a comparison smooths both photos
#: alike. Saving a real photo again as JPEG moved the index by up to 10 % through its chroma; now by ≤ 4.5 %.
#: The index of low-resolution photos (≲ 30 px/mm) moves; that of 12 MP close-ups hardly.
#: 1.3.1: no number moves; with the card in both photos a comparison reads their contrast on its grey steps and
#: calls a change above 5 % a difference (a phone's HDR or enhancement moves the index about as much): results
#: stored by 1.3.0 lack that check and are computed again.
#: 1.4.0: with the card in both photos a comparison puts the follow-up's relief on the baseline's contrast read on
#: the card's grey steps at the skin's brightness (card.contrast_transfer: a phone's tone curve, a veil of stray
#: light). Comparisons with the card in both photos move (the demo course by up to 0.7 point); others do not.
ALGORITHM_VERSION = "1.4.0"


@dataclass(frozen=True)
class Band:
    """A spatial band of the relief, given by the size (diameter) of the features it holds, in mm."""

    name: str
    min_mm: float
    max_mm: float
    meaning: str


BANDS: dict[str, Band] = {
    b.name: b
    for b in (
        Band("fine", 0.1, 0.5, "fine texture: pores, fine lines, micro-relief"),
        Band("scar", 0.5, 5.0, "atrophic acne scars: icepick, boxcar and rolling pits"),
    )
}
#: Features larger than this (mm) are facial form and illumination; they are removed, never measured.
FORM_MM = 5.0


@dataclass(frozen=True)
class ScarClass:
    """A size class of detected scars, by equivalent diameter in mm (``min_mm`` <= d < ``max_mm``)."""

    name: str
    min_mm: float
    max_mm: float
    meaning: str


#: Scars are classed by size, not by clinical type (icepick/boxcar/rolling): on 150 real photos labelled by type
#: the shape the relief proxy gives (wall steepness, floor flatness, depth-to-width) did not differ between the
#: types at all, and the dominant type agreed with the label no better than chance (README, "Scar classes").
SCAR_CLASSES: dict[str, ScarClass] = {
    c.name: c
    for c in (
        ScarClass("narrow", 0.0, 1.2, "narrow pit (< 1.2 mm across), the size of icepick scars"),
        ScarClass("medium", 1.2, 3.0, "medium pit (1.2–3 mm), the size of boxcar scars"),
        ScarClass("wide", 3.0, float("inf"), "wide depression (>= 3 mm), the size of rolling scars"),
    )
}


@dataclass(frozen=True)
class Metric:
    """One reported number."""

    name: str
    unit: str
    band: str | None
    meaning: str
    better: str = "lower"  # which direction is an improvement: "lower", "higher" or "none"


_M = Metric
METRICS: dict[str, Metric] = {}


def _register(*metrics: Metric) -> None:
    for m in metrics:
        if m.name in METRICS:
            raise RuntimeError(f"metric {m.name!r} registered twice")
        METRICS[m.name] = m


_register(
    _M("roughness_index", "%", "scar",
       "Headline relief roughness: RMS relief slope in the scar band (0.5–5 mm), in percent; "
       "lower is smoother. Equals 100 x Sdq of that band for skin lit at 45 degrees."),
    _M("fine_texture_index", "%", "fine",
       "RMS relief slope of the fine band (0.1–0.5 mm: pores, fine lines), in percent; lower is smoother."),
)
for _band in BANDS.values():
    _register(
        _M(f"{_band.name}.Sq", "µm*", _band.name, f"root-mean-square height of the relief proxy ({_band.meaning})"),
        _M(f"{_band.name}.Sa", "µm*", _band.name, f"arithmetic mean height of the relief proxy ({_band.meaning})"),
        _M(f"{_band.name}.Sz", "µm*", _band.name,
           f"maximum height (peak to pit) of the relief proxy ({_band.meaning})"),
        _M(f"{_band.name}.Ssk", "1", _band.name, "skewness of the relief proxy; negative = dominated by pits", "none"),
        _M(f"{_band.name}.Sku", "1", _band.name, "kurtosis of the relief proxy; >3 = sharp isolated pits", "none"),
        _M(f"{_band.name}.Sdq", "1", _band.name, "root-mean-square slope of the relief proxy"),
        _M(f"{_band.name}.Sdr", "%", _band.name, "developed interfacial area ratio of the relief proxy"),
    )
_register(
    _M("scar_density", "1/cm²", "scar", "atrophic scars (0.3–5 mm pits) per square centimetre"),
    _M("scar_area_fraction", "%", "scar", "percentage of the skin area covered by scars"),
    _M("scar_depth_proxy", "µm*", "scar", "mean depth proxy of detected scars"),
    _M("pore_density", "1/cm²", "fine", "visible pores per square centimetre"),
    _M("pore_area_fraction", "%", "fine", "percentage of the skin area covered by pores"),
    _M("melanin_unevenness", "1", None,
       "spread of melanin (brown pigment: age spots, freckles) across the area; pigment, not relief", "lower"),
    _M("erythema_index", "1", None,
       "mean redness from haemoglobin (e.g. after needling); pigment, not relief; absolute only with a card", "lower"),
    _M("erythema_unevenness", "1", None, "spread of redness across the area; pigment, not relief", "lower"),
)


def metric(name: str) -> Metric:
    """Look up a metric by name, with an error that lists the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}") from None
