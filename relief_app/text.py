"""Plain-language formatting for the dashboard: changes, intervals, metric labels and the visit-mode sentence.

Metric names, units and meanings come from :data:`analyzer.METRICS`; nothing here re-types them.
"""
from __future__ import annotations

import math
import re
import unicodedata

from analyzer.registry import METRICS

__all__ = [
    "MINUS", "PROGRESS_METRICS", "NEGATIVE_IS_SMOOTHER", "metric_label", "metric_unit", "metric_meaning",
    "signed", "change_text", "change_with_interval", "significance_text", "visit_sentence", "finite",
    "REGION_COLUMNS", "region_rows", "region_change_rows", "not_a_formula", "table_rows", "NOT_ALIKE",
    "NOT_ALIKE_HEADING", "not_alike_markdown",
]

#: What a spreadsheet runs as a formula when a cell starts with it (OWASP's list, with the full-width forms a
#: spreadsheet also reads); leading blanks, tabs and line breaks are skipped by some spreadsheets.
_FORMULA_LEADS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\ufe62", "\ufe63", "\ufe6b")
_BLANKS = " \t\r\n\x0b\x0c\u00a0\u3000"


def _lead(v: str) -> str:
    """The first character after leading blanks and invisible characters (zero-width spaces, byte-order marks,
    line and paragraph separators: Unicode format, separator and control characters), which a spreadsheet may
    skip as well."""
    for ch in v:
        if ch not in _BLANKS and unicodedata.category(ch) not in ("Cf", "Cc", "Zs", "Zl", "Zp"):
            return ch
    return ""


def not_a_formula(v):
    """Text that a spreadsheet would run as a formula, with a leading apostrophe (other values as they are)."""
    if isinstance(v, str) and (v[:1] in ("\t", "\r") or _lead(v) in _FORMULA_LEADS):
        return "'" + v
    return v


def table_rows(rows):
    """Rows (dicts) for ``st.dataframe``, whose toolbar downloads them as CSV: no text cell runs as a formula."""
    return [{k: not_a_formula(v) for k, v in r.items()} for r in rows]

MINUS = "\u2212"
#: Metrics offered on the progress chart (roughness index first, the default); only names in the registry.
PROGRESS_METRICS = tuple(
    n for n in ("roughness_index", "scar_density", "pore_density", "erythema_index", "melanin_unevenness",
                "fine_texture_index")
    if n in METRICS
)
NEGATIVE_IS_SMOOTHER = (
    "Changes are in % of the first visit's value: negative = smoother (less relief), positive = rougher. "
    "The bars show the 95 % interval; a change is called significant only when it exceeds the measurement "
    "noise (the minimal detectable change) and its interval excludes zero. The change is measured on the skin "
    "both photos show, aligned, so it can differ from the two photos' own roughness indices (each of its whole "
    "frame)."
)


#: Weeks after a treatment in which most new collagen forms (the clinic text: a marked change at 6–8 weeks).
COLLAGEN_WEEKS = (6, 8)


def finite(x) -> bool:
    """True for a real, finite number (``None`` and NaN are not)."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def metric_label(name: str) -> str:
    """``"roughness_index"`` -> ``"Roughness index"``; ``"scar.Sq"`` -> ``"Scar Sq"`` (from the registry name)."""
    m = METRICS[name]
    words = m.name.replace(".", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


#: Per-region numbers shown in the region tables, in this order (all in the registry); area is added apart.
REGION_COLUMNS = tuple(n for n in ("roughness_index", "fine_texture_index", "scar_density", "pore_density")
                       if n in METRICS)
AREA_LABEL = "Skin area (cm²)"


def _rounded(x, digits: int = 2):
    return round(float(x), digits) if finite(x) else None


def region_rows(regions) -> list[dict]:
    """Rows of the per-region table of one photo: region, then each of :data:`REGION_COLUMNS` with its unit.

    ``regions`` maps region name -> ``{metric: value}`` (``Measurement.regions``); a value that could not be
    computed (too little skin in the region) is ``None``.
    """
    rows = []
    for name, values in regions.items():
        row = {"Region": name}
        for m in REGION_COLUMNS:
            row[metric_heading(m)] = _rounded(values.get(m))
        row[AREA_LABEL] = _rounded(values.get("area_cm2"))
        rows.append(row)
    return rows


def region_change_rows(before, after, metric: str = "roughness_index") -> list[dict]:
    """Rows comparing the regions two photos have in common: region, before, after, change (``"−18 %"``).

    The change is ``100 × (after / before − 1)`` of the two photos' own values (no interval).
    """
    unit = metric_unit(metric)
    rows = []
    for name in before:
        if name not in after:
            continue
        a, b = before[name].get(metric), after[name].get(metric)
        change = 100.0 * (float(b) / float(a) - 1.0) if finite(a) and finite(b) and float(a) != 0 else None
        rows.append({"Region": name, f"Before ({unit})": _rounded(a), f"After ({unit})": _rounded(b),
                     "Change": change_text(change)})
    return rows


def metric_unit(name: str) -> str:
    return METRICS[name].unit


#: The quality gate's codes (``analyzer.quality``) in words, for the page (the advice itself follows each).
QUALITY_LABELS = {
    "low_resolution": "too few pixels per mm", "no_texture": "no skin texture", "blur": "out of focus",
    "underexposed": "too dark", "overexposed": "too bright", "clipping": "clipped to white or black",
    "glare": "glare", "noise": "noise, not skin",
}


def quality_words(codes) -> str:
    """``("blur", "glare")`` -> ``"out of focus, glare"`` (an unknown code as it is)."""
    return ", ".join(QUALITY_LABELS.get(c, c.replace("_", " ")) for c in codes)


def metric_heading(name: str) -> str:
    """``"Roughness index (%)"``; a dimensionless measure without "(1)", which reads like a footnote."""
    unit = metric_unit(name)
    return metric_label(name) if unit in ("", "1") else f"{metric_label(name)} ({unit})"


def metric_meaning(name: str) -> str:
    return METRICS[name].meaning


def signed(x: float, digits: int = 0) -> str:
    """``-18.2`` -> ``"−18"``, ``5`` -> ``"+5"``, ``0`` -> ``"0"`` (typographic minus)."""
    if not finite(x):
        return "n/a"
    v = round(float(x), digits)
    if v == 0:
        return f"{0:.{digits}f}"
    s = f"{abs(v):.{digits}f}"
    return (MINUS if v < 0 else "+") + s


def change_text(change: float | None, digits: int = 0) -> str:
    """``"−18 %"``."""
    return "n/a" if not finite(change) else f"{signed(change, digits)} %"


def change_with_interval(change: float | None, low: float | None, high: float | None, digits: int = 0) -> str:
    """``"−18 % (−24 to −12 %)"``; without an interval just ``"−18 %"``; ``"not compared yet"`` without a change."""
    if not finite(change):
        return "not compared yet"
    if finite(low) and finite(high):
        return f"{signed(change, digits)} % ({signed(low, digits)} to {signed(high, digits)} %)"
    return change_text(change, digits)


def sentence_case(msg: str) -> str:
    """A library message as a sentence: its first letter capitalised (the library's sentences start in lower case,
    after "error: " on the command line) — unless it starts with a name, such as a file's, which is kept as typed.

    >>> sentence_case("photo not found: a.jpg — check the path"), sentence_case("week00.jpg was saved already")
    ('Photo not found: a.jpg — check the path', 'week00.jpg was saved already')
    >>> sentence_case("e-mail already given")
    'E-mail already given'
    """
    first = re.match(r"[^\s:;,]*", msg).group(0)
    word = first.replace("-", "")  # ("white-balance", "e-mail": words)
    return msg[:1].upper() + msg[1:] if word.isalpha() and word.islower() else msg


def recomputed_lines(moved: list[dict]) -> list[str]:
    """One plain line per visit whose change reads differently after an update of the analysis
    (:func:`relief_app.visits.recomputed_changes`): its date, its change and verdict now, and before."""
    lines = []
    for m in moved:
        d = m.get("digits", 1)
        now = f"{change_text(m['now'], d)}, {significance_text(m['significant_now'], m['now'])}"
        before = f"{change_text(m['before'], d)}, {significance_text(m['significant_before'], m['before'])}"
        if m["alike_now"] != m["alike_before"]:
            now += ", photos taken alike" if m["alike_now"] else ", photos not taken alike"
            before += ", photos taken alike" if m["alike_before"] else ", photos not taken alike"
        lines.append(f"{m['date']:%d %b %Y}: {now} (was {before})")
    return lines


#: The note on recomputed results, on the Progress page (its first sentence in bold) and in the report.
RECOMPUTED_HEAD = "Computed again by analysis version {now}"
RECOMPUTED_INTRO = (" (an update of Relief). With version {before} these visits' roughness change read differently; "
                    "the earlier results are kept:")


def recomputed_text(version_before: str, version_now: str, moved: list[dict]) -> str:
    """Markdown telling a practitioner which changes read differently after an update of the analysis
    (:func:`recomputed_lines` under a heading naming both versions)."""
    head = (f"**{RECOMPUTED_HEAD.format(now=md_escape(version_now, limit=40))}**"
            + RECOMPUTED_INTRO.format(before=md_escape(version_before, limit=40)))
    return "\n".join([head] + [f"- {line}" for line in recomputed_lines(moved)])


def significance_text(significant: bool | None, change: float | None = None) -> str:
    """The verdict in words, with its direction when the change is given.

    >>> significance_text(True, -32.0), significance_text(True, 41.0), significance_text(False, -4.0)
    ('significantly smoother', 'significantly rougher', 'within measurement noise')
    """
    if significant is None:
        return ""
    if not significant:
        return "within measurement noise"
    if finite(change) and change != 0:
        return "significantly smoother" if change < 0 else "significantly rougher"
    return "significant"


#: A comparison whose photos were not taken alike (``analyzer.consistency``: light moved, another distance, a photo
#: that failed its quality check), in a few words: chart hovers, tables, the report.
NOT_ALIKE = "photos not taken alike — part of this change may come from how they were taken"
#: Heading of the list of what differed, on the Compare page and in the report.
NOT_ALIKE_HEADING = ("The two photos were not taken alike, so part of this change may come from how they were "
                     "taken rather than from the skin")


def not_alike_markdown(differences) -> str:
    """The warning a page shows under a change whose photos were not taken alike: the heading and the
    differences as a list (escaped Markdown)."""
    return f"**{NOT_ALIKE_HEADING}:**\n" + "\n".join(f"- {md_escape(d, limit=None)}" for d in differences)


def visit_sentence(change: float | None, low: float | None, high: float | None,
                   significant: bool | None, *, first_visit: bool = False, weeks: float | None = None,
                   taken_alike: bool = True) -> str:
    """The one sentence a patient reads in visit mode.

    ``weeks``: since the first treatment. Before the collagen window (6–8 weeks) has passed, "no change yet" is
    expected; after it, the sentence does not promise more to come. ``taken_alike=False`` (the photos differ in
    light, distance or quality): a significant change is not stated as settled.

    >>> visit_sentence(-18.0, -24.0, -12.0, True, taken_alike=False)
    'Texture 18 % smoother than at your first visit (range 12–24 %) — the photos were not taken quite alike, so your practitioner will go through this result with you'

    >>> visit_sentence(-18.0, -24.0, -12.0, True)
    'Texture 18 % smoother than at your first visit (range 12–24 %)'
    >>> visit_sentence(-3.0, -8.0, 2.0, False, weeks=2)
    'No change beyond measurement noise yet — collagen rebuilding takes 6–8 weeks'
    >>> visit_sentence(-3.0, -8.0, 2.0, False, weeks=12)
    'No change beyond measurement noise so far — your practitioner will talk the result through with you'
    """
    if first_visit:
        return "Your first photos are the starting point — the next visits will be compared with them"
    if not finite(change):
        return ("This visit's photo could not be compared with your first visit — your practitioner will go "
                "through the photos with you")
    if not significant:
        if weeks is not None and weeks > COLLAGEN_WEEKS[1]:
            return ("No change beyond measurement noise so far — your practitioner will talk the result through "
                    "with you")
        return (f"No change beyond measurement noise yet — collagen rebuilding takes "
                f"{COLLAGEN_WEEKS[0]}–{COLLAGEN_WEEKS[1]} weeks")
    lo, hi = sorted((abs(float(low)), abs(float(high)))) if finite(low) and finite(high) else (None, None)
    rng = f" (range {lo:.0f}–{hi:.0f} %)" if lo is not None else ""
    unsure = "" if taken_alike else (" — the photos were not taken quite alike, so your practitioner will go "
                                     "through this result with you")
    if change < 0:
        return f"Texture {abs(change):.0f} % smoother than at your first visit{rng}{unsure}"
    if unsure:
        return f"Texture {change:.0f} % rougher than at your first visit{rng}{unsure}"
    return (f"Texture {change:.0f} % rougher than at your first visit{rng} — skin can look rougher for a few "
            "weeks after a treatment while it heals")


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$=\"'&")


def md_escape(value: object, limit: int | None = 300) -> str:
    """User text (names, codes, notes, region names) made safe to put inside Markdown: every Markdown, HTML and
    Streamlit-directive character is backslash-escaped (so ``[x](javascript:…)``, ``<b>``, ``:red[…]`` and
    ``# heading`` show as typed), line breaks become spaces, and text longer than ``limit`` is cut with "…"."""
    s = " ".join(str(value if value is not None else "").split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in s)
