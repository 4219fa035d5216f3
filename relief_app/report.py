"""The patient's progress report as a PDF: a pure function of :class:`relief_app.reportdata.ReportData`.

Built with ``fpdf2`` (no browser); the progress chart is drawn with matplotlib (Agg backend) as a static PNG in
the same style as the dashboard's plotly chart (:func:`relief_app.charts.progress_figure`): % change from the
first visit over the weeks since the first treatment, 95 % intervals as bars, treatments as dashed lines, the
6–8 week collagen window after each shaded green, the 12-week evaluation dotted.

Text is set in DejaVu Sans, the TrueType font matplotlib ships (so nothing is downloaded and any Latin, Greek
or Cyrillic name prints; characters the font lacks — Chinese, Japanese, Korean, emoji — are left out, with a
warning in the log, never an error). Free text (names,
regions, treatment notes) is cleaned of control characters and cut to a fixed length, and is never read as
Markdown or HTML.
"""
from __future__ import annotations

import datetime as dt
import io
import math
import re
import unicodedata
from pathlib import Path

import numpy as np

from .charts import COLLAGEN_WINDOW_WEEKS, EVALUATION_WEEK
from .reportdata import SECONDARY_METRICS, RegionReport, ReportData
from .text import (MINUS, NEGATIVE_IS_SMOOTHER, NOT_ALIKE, NOT_ALIKE_HEADING, RECOMPUTED_HEAD, RECOMPUTED_INTRO,
                   change_text, change_with_interval, finite, metric_heading, metric_label, metric_meaning,
                   metric_unit, recomputed_lines, significance_text)

__all__ = ["render_pdf", "chart_png", "PAPERS", "clean"]

PAPERS = {"A4": "A4", "Letter": "Letter"}
_SMOOTHER, _ROUGHER, _NEUTRAL = "#2166ac", "#b2182b", "#555555"
_FONT = "DejaVu"

METHOD = (
    "What the numbers mean. The roughness index is the root-mean-square slope of the skin's relief in the scar "
    "band (features 0.5–5 mm across), in percent, recovered from the shading of a photo; lower is smoother. Each "
    "follow-up photo is aligned onto the first photo of its region and the change is measured on the area both "
    "photos show. The 95 % interval is the range the true change lies in, given the noise of photographing the "
    "same skin twice; the minimal detectable change (MDC) is the smallest change this measurement can tell from "
    "that noise. A change is called significant only when it exceeds the MDC and its interval excludes zero. "
    "Secondary measures are each photo's own values compared by ratio, without an interval."
)
LIMITS = (
    "What a photo cannot tell. A 2-D photo does not measure depth in micrometres: the relief is inferred from "
    "shading, so a change of light, camera distance or angle, make-up, redness or swelling after a treatment can "
    "move the numbers. Compare photos taken the same way (same light, the calibration card in view). Micro-"
    "needling remodels collagen over weeks: changes in the first 6–8 weeks after a session are expected to be "
    "small, or the skin may even look rougher while it heals. The report describes texture only; it is not a diagnosis and does "
    "not replace the practitioner's examination."
)


# ------------------------------------------------------------------------------------------------- text
# (private-use characters too: no font draws them, and the page count's placeholder is made of them)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
                      r"\ue000-\uf8ff\U000f0000-\U0010ffff]")
#: fpdf2 replaces the page count's placeholder anywhere in the document: with its default "{nb}", a patient named
#: "Anna {nb}" was printed "Anna 2". Private-use characters, which clean() removes from every text printed, cannot
#: come from a user (three of them: the width fpdf2 keeps for the count, as for "{nb}").
PAGES_ALIAS = "\ue000\ue001\ue002"


def clean(text, limit: int = 200, *, one_line: bool = True) -> str:
    """Printable text for the PDF: no control or bidi characters, no lone surrogates, at most ``limit`` characters.

    Longer text ends with "…". Markdown or HTML stays literal text (the PDF never interprets it).
    """
    s = "" if text is None else str(text)
    s = s.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    s = unicodedata.normalize("NFC", s)
    s = s.replace("\r\n", "\n").replace("\t", " ")
    if one_line:
        s = " ".join(s.split())
    s = _CONTROL.sub("", s)
    if len(s) > limit:
        s = s[: max(limit - 1, 0)].rstrip() + "…"
    return s


def _breakable(s: str, every: int = 40) -> str:
    """Insert zero-width-free break chances (spaces) into words longer than ``every`` characters."""
    return re.sub(r"(\S{%d})(?=\S)" % every, r"\1 ", s)


def _weeks(w: float) -> str:
    """Weeks to one decimal, without a trailing ".0" (0, 1, 6, 12, but 2.4)."""
    text = f"{w:.1f}"
    return (text[:-2] if text.endswith(".0") else text).replace("-", MINUS)


def _decimals(values, significant: int = 3) -> int:
    """Decimals that give a column's largest value ``significant`` figures, so every row of a column has the
    same number of decimals (4.91, 5.30 — not 4.91, 5.3)."""
    top = max((abs(x) for x in values if finite(x)), default=0.0)
    return 0 if top == 0 else max(0, significant - 1 - math.floor(math.log10(top)))


def _column_widths(pdf, heads, first: tuple, total: float, whole: dict | None = None) -> list[float]:
    """Widths (mm) of a table: ``first`` for the leading columns, the rest shared equally — but every column
    at least as wide as the longest word of its heading (bold, at the current size), so no word is split
    across lines, and as the texts of ``whole`` ({column: [text]}) that must stay on one line (dates).
    Columns over their need give way in proportion when the words need more room."""
    pdf.set_font(style="B")
    need = [max(pdf.get_string_width(word) for word in h.split()) + 2.0 for h in heads]
    pdf.set_font(style="")
    for i, texts in (whole or {}).items():
        need[i] = max([need[i], *(pdf.get_string_width(t) + 2.0 for t in texts)])
    rest = (total - sum(first)) / max(len(heads) - len(first), 1)
    widths = [max(w, n) for w, n in zip([*first, *[rest] * (len(heads) - len(first))], need)]
    over = sum(widths) - total
    if over > 0:  # take it from the slack of columns wider than their words need
        slack = [w - n for w, n in zip(widths, need)]
        widths = [w - over * s / sum(slack) if sum(slack) > over else w * total / sum(widths)
                  for w, s in zip(widths, slack)]
    return widths


def _date(d: dt.date | None) -> str:
    return "—" if d is None else f"{d:%d %b %Y}"


# ------------------------------------------------------------------------------------------------ chart
def chart_png(region: RegionReport, first_treatment: dt.date | None, treatments=(), *, width_in: float = 7.0,
              height_in: float = 3.1, dpi: int = 200) -> bytes:
    """The progress chart of one region as a PNG (matplotlib, Agg): the dashboard's chart, static."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a server thread

    series = region.series
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    ax = fig.add_subplot(111)
    tx_weeks = [(t.date - first_treatment).days / 7.0 for t in treatments] if first_treatment else []
    for i, w in enumerate(tx_weeks):
        ax.axvspan(w + COLLAGEN_WINDOW_WEEKS[0], w + COLLAGEN_WINDOW_WEEKS[1], color="#1a9850", alpha=0.12, lw=0,
                   label="collagen window (6–8 weeks)" if i == 0 else None, zorder=0)
        ax.axvline(w, color="#7b3294", ls="--", lw=1.2, label="treatment" if i == 0 else None, zorder=1)
    if tx_weeks:
        ax.axvline(EVALUATION_WEEK, color="#333333", ls=":", lw=1.2, label="12-week evaluation", zorder=1)
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    xs = [s.weeks for s in series]
    ys = [s.change if s.change is not None else np.nan for s in series]
    ax.plot(xs, ys, color="#4d4d4d", lw=1.6, zorder=2)
    for s in series:
        if s.change is None:
            continue
        if s.low is not None and s.high is not None:
            ax.errorbar([s.weeks], [s.change], yerr=[[s.change - s.low], [s.high - s.change]], color="#7f7f7f",
                        lw=1.2, capsize=3, zorder=3)
        shape = "D" if s.caveats else "o"  # a diamond: photos not taken alike (the dashboard's marker)
        if s.significant:
            colour = _SMOOTHER if s.change < 0 else _ROUGHER
            ax.plot([s.weeks], [s.change], shape, ms=7, color=colour, zorder=4)
        else:
            face = _NEUTRAL if s.is_baseline else "white"
            ax.plot([s.weeks], [s.change], shape, ms=7, mfc=face, mec=_NEUTRAL, mew=1.5, zorder=4)
    lo = min(xs + [0.0]) - 0.5
    hi = max(xs + ([EVALUATION_WEEK] if tx_weeks else []) + [w + COLLAGEN_WINDOW_WEEKS[1] for w in tx_weeks]) + 0.5
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"weeks since {'first treatment' if first_treatment else 'first visit'}")
    ax.set_ylabel("change from first visit (%)")
    ax.set_title(f"{metric_label('roughness_index')}: change from first visit, with 95 % intervals", fontsize=10)
    ax.grid(axis="y", color="#e5e5e5", lw=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    if tx_weeks:
        ax.legend(loc="best", fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _jpeg(rgb: np.ndarray, max_side: int = 900) -> io.BytesIO:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8), "RGB")
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=88)
    buf.seek(0)
    return buf


# ------------------------------------------------------------------------------------------------- PDF
def _font_files() -> tuple[Path, Path]:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"


#: Fonts with Chinese, Japanese and Korean glyphs (DejaVu has none), the first found is the fallback. Debian's
#: fonts-droid-fallback (1.8 MB) is installed by `make setup`; without one such characters are left out.
CJK_FONTS = ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
             "/usr/share/fonts/truetype/arphic-ttf/uming.ttf")


def cjk_font() -> Path | None:
    """The CJK fallback font file, or ``None`` when none is installed."""
    return next((Path(f) for f in CJK_FONTS if Path(f).is_file()), None)


def _pdf_class():
    from fpdf import FPDF

    class _Report(FPDF):
        footer_text = ""

        def footer(self):
            self.set_y(-12)
            self.set_font(_FONT, "", 7)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, f"{self.footer_text} · page {self.page_no()} of {self.str_alias_nb_pages}", align="C")
            self.set_text_color(0, 0, 0)

    return _Report


def render_pdf(data: ReportData, *, paper: str = "A4") -> bytes:
    """The progress report of ``data`` as PDF bytes, on A4 or US Letter.

    The same ``data`` (including ``generated_at``) gives the same bytes.
    """
    if paper not in PAPERS:
        from analyzer.errors import OptionError

        raise OptionError(f"paper {paper!r} is not known; use A4 or Letter")
    from fpdf.enums import XPos, YPos

    regular, bold = _font_files()
    pdf = _pdf_class()(orientation="P", unit="mm", format=PAPERS[paper])
    pdf.alias_nb_pages(PAGES_ALIAS)
    pdf.set_creation_date(data.generated_at)
    pdf.set_title("Skin texture progress report")
    pdf.set_creator("Relief")
    pdf.add_font(_FONT, "", str(regular))
    pdf.add_font(_FONT, "B", str(bold))
    cjk = cjk_font()
    if cjk is not None:  # a patient's name in Chinese must not lose its characters
        pdf.add_font("CJK", "", str(cjk))
        pdf.set_fallback_fonts(["CJK"], exact_match=False)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=16)
    pdf.footer_text = (f"Relief skin texture report · generated {data.generated_at:%Y-%m-%d %H:%M %Z}".rstrip()
                       + f" · algorithm version {clean(data.algorithm_version, 20)}")
    pdf.add_page()
    W = pdf.epw  # printable width

    def text(s: str, size: float = 10, style: str = "", h: float | None = None, colour=(0, 0, 0)):
        pdf.set_font(_FONT, style, size)
        pdf.set_text_color(*colour)
        pdf.multi_cell(W, h or size * 0.5, _breakable(s), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)

    def heading(s: str, size: float = 13):
        if pdf.will_page_break(20):
            pdf.add_page()
        pdf.ln(2)
        text(s, size, "B", colour=(33, 60, 110))
        pdf.ln(1)

    # --- header -----------------------------------------------------------------------------------------------
    p = data.patient
    text(clean(data.clinic, 120) or "Relief", 10, "B", colour=(90, 90, 90))
    text("Skin texture progress report", 18, "B", h=9)
    who = [f"Patient: {clean(p.name, 120)}"]
    if p.code:
        who.append(f"Code: {clean(p.code, 60)}")
    if p.birth_date:
        who.append(f"Born: {_date(p.birth_date)}")
    text(" · ".join(who), 11, h=6)
    text(f"Report of {data.generated_at:%d %B %Y}", 9, colour=(90, 90, 90))
    pdf.ln(2)

    # --- course summary -----------------------------------------------------------------------------------------
    heading("Course summary", 12)
    weeks = ((data.last_visit - data.first_treatment).days / 7.0
             if data.last_visit and data.first_treatment else None)
    summary = (f"{len(data.treatments)} treatment(s), {data.n_visits} visit(s) from {_date(data.first_visit)} "
               f"to {_date(data.last_visit)}")
    summary += (f"; the last visit was {weeks:.0f} week(s) after the first treatment." if weeks is not None
                else ".")
    text(summary, 10, h=5)
    if data.treatments:
        pdf.ln(1)
        pdf.set_font(_FONT, "", 8)
        with pdf.table(col_widths=(22, 30, 22, 40, W - 114), line_height=4.2, text_align="LEFT",
                       first_row_as_headings=True) as table:
            r = table.row()
            for h in ("Date", "Procedure", "Needle depth", "Area", "Notes"):
                r.cell(h)
            for t in data.treatments:
                r = table.row()
                r.cell(_date(t.date))
                r.cell(_breakable(clean(t.procedure, 60)))
                r.cell(f"{t.needle_depth_mm:g} mm" if finite(t.needle_depth_mm) else "")
                r.cell(_breakable(clean(t.area, 80)))
                r.cell(_breakable(clean(t.notes, 160)))
    if not data.regions:
        pdf.ln(2)
        text("No photos yet — the first visit's photos will be the starting point.", 10)

    # --- per region -----------------------------------------------------------------------------------------------
    for region in data.regions:
        _region_section(pdf, data, region, heading, text, W)

    # --- method and limits ----------------------------------------------------------------------------------------
    heading("Method and limits", 12)
    text(METHOD, 8.5, h=4.2)
    pdf.ln(1.5)
    text(LIMITS, 8.5, h=4.2)
    pdf.ln(1.5)
    meanings = "; ".join(f"{metric_label(m)} ({metric_unit(m)}): {metric_meaning(m).rstrip('.')}"
                         for m in ("roughness_index",) + SECONDARY_METRICS)
    text("Measures. " + meanings + ".", 7.5, h=3.8, colour=(70, 70, 70))
    return bytes(pdf.output())


def _region_section(pdf, data: ReportData, region: RegionReport, heading, text, W: float) -> None:
    from fpdf.enums import XPos, YPos

    rows = region.rows
    heading(f"Region: {clean(region.name, 80)}")
    # the sentence the patient sees in visit mode, in a box
    pdf.set_fill_color(235, 242, 250)
    pdf.set_font(_FONT, "B", 11)
    pdf.multi_cell(W, 6, _breakable(region.sentence), fill=True, padding=2, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    last = rows[-1] if rows else None
    if last is not None and not last.is_baseline:
        verdict = significance_text(last.significant, last.change_pct) or "no interval yet"
        text(f"Latest change ({_date(last.date)}): "
             f"{change_with_interval(last.change_pct, last.ci_low, last.ci_high)} — {verdict}"
             + (f"; smallest detectable change {last.mdc_pct:.0f} %" if finite(last.mdc_pct) else ""), 10, h=5)
        if last.caveats:
            text(f"{NOT_ALIKE_HEADING}: " + "; ".join(clean(c, 400) for c in last.caveats) + ".", 9, h=4.5,
                 colour=(150, 60, 0))
    if region.recomputed:  # an earlier report may show other numbers: say which, and why (as the Progress page)
        text(RECOMPUTED_HEAD.format(now=clean(data.algorithm_version, 20))
             + RECOMPUTED_INTRO.format(before=clean(region.recomputed_from, 20)), 9, h=4.5, colour=(150, 60, 0))
        for line in recomputed_lines(list(region.recomputed)):
            text(f"\u2022 {line}", 8.5, h=4.2, colour=(150, 60, 0))
    if len(region.series) > 1:
        png = chart_png(region, data.first_treatment, data.treatments)
        h = W * 3.1 / 7.0
        if pdf.will_page_break(h + 2):
            pdf.add_page()
        pdf.image(io.BytesIO(png), x=pdf.l_margin, w=W, h=h)
        text(NEGATIVE_IS_SMOOTHER + " Dashed lines: treatments; green: the 6–8 week collagen window after each; "
             "dotted: the 12-week evaluation. Open markers are within measurement noise; diamonds: photos not taken "
             "alike (*).", 7.5, h=3.6,
             colour=(70, 70, 70))

    # aligned first-vs-latest pair
    pair = region.pair
    if pair is not None:
        if pair.error or pair.before is None or pair.after is None:
            text(f"Before/after photos could not be aligned: {clean(pair.error, 300)}", 9, colour=(150, 60, 0))
        else:
            gap = 4.0
            w = (W - gap) / 2
            ratio = pair.before.shape[0] / max(pair.before.shape[1], 1)
            h = min(w * ratio, 90.0)
            w_img = h / ratio
            if pdf.will_page_break(h + 12):
                pdf.add_page()
            pdf.ln(1)
            y = pdf.get_y()
            pdf.image(_jpeg(pair.before), x=pdf.l_margin + (w - w_img) / 2, y=y, w=w_img, h=h)
            pdf.image(_jpeg(pair.after), x=pdf.l_margin + w + gap + (w - w_img) / 2, y=y, w=w_img, h=h)
            pdf.set_y(y + h + 1)
            pdf.set_font(_FONT, "", 8)
            pdf.cell(w, 4, f"Before — {_date(pair.before_date)} (first visit)", align="C")
            pdf.set_x(pdf.l_margin + w + gap)
            pdf.cell(w, 4, f"Latest — {_date(pair.after_date)} (aligned to the first photo)", align="C",
                     new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)

    # every visit
    if rows:
        if pdf.will_page_break(30):
            pdf.add_page()
        pdf.ln(1)
        heads = ["Date", "Week", metric_heading("roughness_index"),
                 "Change vs first visit", "95 % interval", "MDC", "Verdict"]
        heads += [metric_heading(m) for m in SECONDARY_METRICS]
        pdf.set_font(_FONT, "", 6)
        widths = _column_widths(pdf, heads, (16, 10, 17, 15, 25, 9, 21), W, whole={0: [_date(v.date) for v in rows]})
        digits = {m: _decimals([v.metrics.get(m) for v in rows]) for m in SECONDARY_METRICS}
        digits["roughness_index"] = _decimals([v.roughness_index for v in rows])
        with pdf.table(col_widths=widths, line_height=3.2, text_align="CENTER",
                       first_row_as_headings=True) as table:
            r = table.row()
            for h_ in heads:
                r.cell(h_)
            for v in rows:
                r = table.row()
                r.cell(_date(v.date))
                r.cell(_weeks(v.weeks))
                r.cell(f"{v.roughness_index:.{digits['roughness_index']}f}" if finite(v.roughness_index)
                       else "not measured")
                r.cell("reference" if v.is_baseline else change_text(v.change_pct))
                r.cell(f"{change_text(v.ci_low)} to {change_text(v.ci_high)}"
                       if finite(v.ci_low) and finite(v.ci_high) else "")
                r.cell(f"{v.mdc_pct:.0f} %" if finite(v.mdc_pct) else "")
                r.cell("" if v.is_baseline else significance_text(v.significant, v.change_pct)
                       + (" *" if v.caveats else ""))
                for m in SECONDARY_METRICS:
                    x = v.metrics.get(m)
                    r.cell(f"{x:.{digits[m]}f}" if finite(x) else "")
        if any(v.caveats for v in rows):
            text(f"* {NOT_ALIKE[:1].upper()}{NOT_ALIKE[1:]}.", 7.5, h=3.6, colour=(150, 60, 0))
