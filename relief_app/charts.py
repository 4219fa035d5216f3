"""Plotly figures of the dashboard: progress over weeks and the difference map. No Streamlit here.

Labels and units are read from :data:`analyzer.METRICS` through :mod:`relief_app.text`.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .text import (COLLAGEN_WEEKS, NOT_ALIKE, change_with_interval, finite, metric_label, metric_unit,
                   significance_text)

__all__ = ["SeriesPoint", "progress_series", "progress_figure", "difference_figure", "COLLAGEN_WINDOW_WEEKS",
           "EVALUATION_WEEK"]

#: New collagen is laid down mostly 6–8 weeks after a needling session: the window where change is expected
#: (the one constant of it is :data:`relief_app.text.COLLAGEN_WEEKS`, which the patient's sentence reads too).
COLLAGEN_WINDOW_WEEKS = COLLAGEN_WEEKS
#: Standard time point to judge a course of treatment, weeks after the first session.
EVALUATION_WEEK = 12.0
_SMOOTHER, _ROUGHER, _NEUTRAL = "#2166ac", "#b2182b", "#555555"
#: The charts' text (ticks, axis titles, colour bar): Streamlit's chart theme greys it to #808495, 3.7:1 on white,
#: under the 4.5:1 of WCAG AA; this is 12.5:1. The collagen window's label, a darker green than its band: 5.9:1.
TEXT_COLOUR, _WINDOW_TEXT = "#31333F", "#13733a"


@dataclass(frozen=True)
class SeriesPoint:
    """One visit on the chart: % change of a metric from the first visit, with its interval when known."""

    visit_id: int
    date: dt.date
    weeks: float
    value: float | None          # the metric itself (registry unit)
    change: float | None         # % of the first visit's value; negative = lower (smoother for relief)
    low: float | None
    high: float | None
    significant: bool | None
    is_baseline: bool
    caveats: tuple[str, ...] = ()  # the photos were not taken alike (light, distance, quality): read with care


def _weeks(p, first_tx: dt.date | None, base_date: dt.date) -> float:
    if p.weeks_since_first_treatment is not None:
        return float(p.weeks_since_first_treatment)
    ref = first_tx or base_date
    return (p.date - ref).days / 7.0


def progress_series(points: Sequence, metric: str = "roughness_index") -> list[SeriesPoint]:
    """Chart points from ``store.progress(...)``.

    For the roughness index the stored comparison with the baseline gives the change and its 95 % interval
    (measured on the common overlap after alignment); a follow-up without one (not compared yet, or the photos
    could not be aligned) has no change — never the plain ratio of the two photos' values, which is not the
    same number (the two photos show different areas) and has no interval. For other metrics the change is the
    ratio of the two photos' own measurements, without an interval (``significant=None``).
    """
    if not points:
        return []
    base = next((p for p in points if p.is_baseline), points[0])
    base_date = base.date

    def value_of(p):
        if metric == "roughness_index":
            return p.roughness_index
        return None if p.metrics is None else p.metrics.get(metric)

    v0 = value_of(base)
    out = []
    for p in points:
        v = value_of(p)
        v = float(v) if finite(v) else None
        ratio = 100.0 * (v / v0 - 1.0) if v is not None and finite(v0) and v0 != 0 else None
        caveats = () if p.is_baseline else tuple(p.caveats)  # (how the photos differ)
        if p.is_baseline:
            change, low, high, sig = 0.0, None, None, None
        elif metric == "roughness_index":
            if finite(p.change_pct):
                change = float(p.change_pct)
                low = float(p.ci_low) if finite(p.ci_low) else None
                high = float(p.ci_high) if finite(p.ci_high) else None
                sig = p.significant
            else:
                change, low, high, sig = None, None, None, None
        else:
            change, low, high, sig = ratio, None, None, None
        out.append(SeriesPoint(visit_id=p.visit_id, date=p.date, weeks=_weeks(p, None, base_date), value=v,
                               change=change, low=low, high=high, significant=sig, is_baseline=p.is_baseline,
                               caveats=caveats))
    return out


def progress_figure(series: Sequence[SeriesPoint], treatments: Sequence = (), *, metric: str = "roughness_index",
                    first_treatment: dt.date | None = None, height: int = 420, large: bool = False) -> go.Figure:
    """% change from the first visit vs weeks since the first treatment.

    Treatments are dashed vertical lines, the 6–8 week collagen window after each is shaded, and the 12-week
    evaluation is marked. Filled markers are significant changes, open markers are within measurement noise;
    diamonds mark follow-ups whose photos were not taken like the first visit's (:data:`NOT_ALIKE`).
    """
    xs = [s.weeks for s in series]
    ys = [s.change for s in series]
    plus = [(s.high - s.change) if s.high is not None and s.change is not None else None for s in series]
    minus = [(s.change - s.low) if s.low is not None and s.change is not None else None for s in series]
    unit = metric_unit(metric)
    colours, symbols, hover = [], [], []
    for s in series:
        shape = "diamond" if s.caveats else "circle"
        if s.significant and s.change is not None:
            colours.append(_SMOOTHER if s.change < 0 else _ROUGHER)
            symbols.append(shape)
        else:
            colours.append(_NEUTRAL)
            symbols.append(shape if s.is_baseline else shape + "-open")
        value = f"{s.value:.3g} {unit}" if s.value is not None else "not measured"
        what = "first visit (reference)" if s.is_baseline else (
            change_with_interval(s.change, s.low, s.high) + (f", {significance_text(s.significant, s.change)}"
                                                            if s.significant is not None else ""))
        if s.caveats:
            what += f"<br>{NOT_ALIKE}"
        hover.append(f"{s.date:%d %b %Y} (week {s.weeks:.1f})<br>{metric_label(metric)}: {value}<br>{what}")

    # Treatments, their collagen windows and the 12-week evaluation, under the data. Shapes are built as plain
    # dicts and set at once: fig.add_vline/add_vrect re-validate the whole layout per call (~60 ms each).
    tx_weeks = [(t.date - first_treatment).days / 7.0 for t in treatments] if first_treatment else []
    shapes, notes = [], []

    def vline(x, colour, dash, label, pos_y):
        shapes.append(dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, layer="below",
                           line=dict(color=colour, dash=dash, width=1.5)))
        if label:
            notes.append(dict(x=x, xref="x", y=pos_y, yref="paper", text=label, showarrow=False, xanchor="left",
                              font=dict(color=colour)))

    for i, w in enumerate(tx_weeks):
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=w + COLLAGEN_WINDOW_WEEKS[0],
                           x1=w + COLLAGEN_WINDOW_WEEKS[1], y0=0, y1=1, fillcolor="#1a9850", opacity=0.12,
                           line=dict(width=0), layer="below"))
        # The patient's chart (large, often on a phone 360 px wide) names only the first treatment and leaves the
        # collagen window to its caption: on a phone the labels ran into each other and into the 12-week mark.
        if i == 0 and not large:
            notes.append(dict(x=w + COLLAGEN_WINDOW_WEEKS[0], xref="x", y=1.0, yref="paper", yanchor="bottom",
                              text="collagen window", showarrow=False, xanchor="left", font=dict(color=_WINDOW_TEXT)))
        vline(w, "#7b3294", "dash", "treatment" if i == 0 or (len(tx_weeks) <= 6 and not large) else None, 0.02)
    if tx_weeks:
        # anchored to the right of its line's left side: on a narrow (phone) chart the label stays inside
        vline(EVALUATION_WEEK, "#333333", "dot", "12 weeks" if large else "12-week evaluation", 0.95)
        notes[-1]["xanchor"] = "right"
        if large:  # above the plot: inside it, the label sat on the first visit's line (0 %) once the skin improved
            notes[-1].update(y=1.0, yanchor="bottom")
    # The first visit's level: "below the line = smoother" (visit mode) needs a line one can see.
    shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=0, y1=0, layer="below",
                       line=dict(color="#555555" if large else "#999999", width=2.5 if large else 1)))

    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="lines+markers", name=metric_label(metric),
        line=dict(color="#4d4d4d", width=3 if large else 2),
        marker=dict(size=14 if large else 10, color=colours, symbol=symbols, line=dict(width=2, color=colours)),
        error_y=dict(type="data", array=plus, arrayminus=minus, visible=True, thickness=1.5, width=6,
                     color="#7f7f7f"),
        hovertext=hover, hoverinfo="text",
    ))
    axis_from = "first treatment" if first_treatment is not None else "first visit"
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
        xaxis_title=f"weeks since {axis_from}",
        # (the patient's chart: a title that fits a phone's 480 px height; "lower is smoother" is in its caption)
        yaxis_title=("change since your first visit (%)" if large and metric == "roughness_index"
                     else f"{metric_label(metric)}: change from first visit (%)"),
        font=dict(size=18 if large else 13, color=TEXT_COLOUR), shapes=shapes, annotations=notes,
    )
    if large:  # axis titles smaller than the ticks: "weeks since first treatment" fits a phone's width
        fig.update_xaxes(title_font_size=15)
        fig.update_yaxes(title_font_size=15)
    lo = min([v for v in xs] + [0.0]) - 0.5
    hi = max([v for v in xs] + ([EVALUATION_WEEK] if tx_weeks else []) + [w + COLLAGEN_WINDOW_WEEKS[1]
                                                                          for w in tx_weeks]) + 0.5
    fig.update_xaxes(range=[lo, hi], zeroline=False)
    return _dark_text(fig)


def _dark_text(fig: go.Figure) -> go.Figure:
    """Axis text in :data:`TEXT_COLOUR`: Streamlit's chart theme sets the axes' own font colour, which the
    layout's font does not reach."""
    for update in (fig.update_xaxes, fig.update_yaxes):
        update(tickfont_color=TEXT_COLOUR, title_font_color=TEXT_COLOUR)
    return fig


def difference_figure(diff: np.ndarray, *, px_per_mm: float | None = None, height: int = 460,
                      max_pixels: int = 250_000) -> go.Figure:
    """The local change map as a diverging heat map: blue = smoother, red = rougher, white = unchanged.

    ``diff`` is % local change on the baseline's grid (NaN outside the overlap: shown blank). Axes in mm when
    the grid's scale is known. The colour range is symmetric about 0 (98th percentile of |change|).
    """
    d = np.asarray(diff, dtype=np.float32)
    step = max(1, int(np.ceil(np.sqrt(d.size / max_pixels))))
    d = d[::step, ::step]
    finite_vals = np.abs(d[np.isfinite(d)])
    lim = float(np.percentile(finite_vals, 98)) if finite_vals.size else 1.0
    lim = max(lim, 1.0)
    scale = (px_per_mm / step) if px_per_mm else None
    x = (np.arange(d.shape[1]) / scale) if scale else None
    y = (np.arange(d.shape[0]) / scale) if scale else None
    unit = "mm" if scale else "px"
    fig = go.Figure(go.Heatmap(
        z=d, x=x, y=y, colorscale="RdBu_r", zmid=0.0, zmin=-lim, zmax=lim, hoverongaps=False,
        colorbar=dict(title=dict(text="local change, %<br>blue = smoother<br>red = rougher"), ticksuffix=" %"),
        hovertemplate=f"x %{{x:.1f}} {unit}, y %{{y:.1f}} {unit}<br>change %{{z:.0f}} %<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", scaleratio=1, title=unit)
    fig.update_xaxes(title=unit)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), font=dict(color=TEXT_COLOUR))
    return _dark_text(fig)
