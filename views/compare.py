"""Compare two visits of a region: aligned before/after, overlay, difference map and scar-by-scar changes."""
import streamlit as st

from analyzer.comparison import SCAR_DEPTH_CHANGE_PCT
from storage import comparison_caveats

from relief_app import charts, images, services, visits
from relief_app.text import (NEGATIVE_IS_SMOOTHER, REGION_COLUMNS, change_text, change_with_interval, finite,
                             not_alike_markdown)
from relief_app.text import md_escape as esc
from relief_app.text import metric_heading, metric_unit, region_change_rows, significance_text, table_rows

if "patient_id" not in st.session_state:
    st.session_state["patient_id"] = None

pid, _, regions = services.patient_page(
    "Compare visits", without_photos="No photos yet — record visits on the **New visit** page.")

region = st.selectbox("Region", regions, key="compare_region")
with services.show_errors():
    photos = services.photos(pid, region)
if len(photos) < 2:
    st.info(f"Only one photo of {esc(region)} so far — a comparison needs a second visit.")
    st.stop()

by_id = {p.id: p for p in photos}
ids = list(by_id)


def _label(i: int) -> str:
    p = by_id[i]
    return f"{p.visit_date:%d %b %Y} — {p.filename}"


# By default the photos the progress chart and the report use: the baseline and the latest visit's photo that
# counts (a visit with a retake of the region has two photos; the first measurable one stands for it everywhere).
with services.show_errors():
    pair = visits.before_after_ids(services.progress(pid, region))
a_default, b_default = (ids.index(pair[0]), ids.index(pair[1])) if pair is not None else (0, len(ids) - 1)
ca, cb = st.columns(2)
a_id = ca.selectbox("Before (reference)", ids, index=a_default, format_func=_label, key="compare_a")
b_id = cb.selectbox("After", ids, index=b_default, format_func=_label, key="compare_b")
if a_id == b_id:
    st.info("Pick two different visits.")
    st.stop()
if by_id[a_id].visit_date > by_id[b_id].visit_date:
    st.caption("“Before” is later than “after”: the change is read from the later photo back to the earlier one.")

with services.show_errors():
    with st.spinner("Aligning the photos and measuring the change…"):
        view = services.compare_views(pid, by_id[a_id], by_id[b_id])
v = view["values"]

m1, m2, m3 = st.columns([2, 1, 1])
m1.metric("Texture change", change_with_interval(v["change_pct"], v["ci_low"], v["ci_high"]))
# (as text that wraps: a metric cut "significantly smoother" to "significantly …" in its column)
m2.caption("Verdict")
m2.markdown(f"**{significance_text(v['significant'], v['change_pct'])}**")
m3.metric("Smallest detectable change", f"{v['mdc_pct']:.0f} %")
st.caption(NEGATIVE_IS_SMOOTHER)
# How the two photos were taken differently (light moved, another distance, a photo that failed its quality check):
# the number stands, but it may not all be the skin's.
caveats = comparison_caveats(v.get("result"))
if caveats:
    st.warning(not_alike_markdown(caveats))

st.subheader("Aligned before and after")
left, right = st.columns(2)
# (captions are plain text: the file name is the uploader's text)
left.html(images.figure(view["baseline"], caption=f"Before — {_label(a_id)}"))
right.html(images.figure(view["followup"], caption=f"After — {_label(b_id)} (aligned to the before photo)"))

overlay, _ = st.columns([3, 2])
with overlay:
    opacity = st.slider("Overlay: after photo opacity (%)", 0, 100, 50, step=5, key="overlay_opacity")
    st.html(images.figure(images.blend(view["baseline"], view["followup"], opacity=opacity / 100.0),
                          caption=f"Before with the after photo laid over it at {opacity} %"))

st.subheader("Where the texture changed")
st.plotly_chart(charts.difference_figure(view["difference"], px_per_mm=view["px_per_mm"]), key="difference_map",
                config={"displaylogo": False})
st.caption("Local change of relief roughness (3 mm neighbourhoods), in % of the before photo's mean: "
           "blue = smoother, red = rougher, white = unchanged; blank = outside the area both photos show "
           "or under the calibration card (never measured). In the photos above, grey = outside the area the "
           "after photo shows.")

st.subheader("Scar by scar")
depth_unit = metric_unit("scar_depth_proxy")
rows = []
for s in v["result"].get("scar_changes", []):
    rows.append({
        "Status": "no longer detected" if s.get("status") == "vanished" else s.get("status"),
        "Size": s.get("kind"),
        "Position (mm)": f"{s.get('x_mm', 0):.1f}, {s.get('y_mm', 0):.1f}",
        # (text, so that a scar missing on one side reads "—", not "None")
        f"Depth before ({depth_unit})": f"{s['baseline_depth_um']:.1f}" if finite(s.get("baseline_depth_um"))
        else "—",
        f"Depth after ({depth_unit})": f"{s['followup_depth_um']:.1f}" if finite(s.get("followup_depth_um"))
        else "—",
        "Depth change": change_text(s.get("depth_change_pct")) if finite(s.get("depth_change_pct")) else "",
    })
if rows:
    counts = {k: sum(r["Status"] == k for r in rows) for k in ("shallower", "no longer detected", "unchanged",
                                                                 "deeper", "new")}
    st.markdown(" · ".join(f"**{n}** {k}" for k, n in counts.items() if n))
    st.dataframe(table_rows(rows), hide_index=True, key="scar_table")
    st.caption(f"Depths are the relief proxy ({depth_unit}: micrometres for a nominal 45° light — relative, so compare "
               "photos taken with the same light). "
               f"Shallower/deeper = more than {SCAR_DEPTH_CHANGE_PCT:.0f} % change (a single scar's repeatability); "
               "no longer detected = below the detection threshold now (too shallow to find, not necessarily "
               "gone: no depth is claimed); new = not in the before photo.")
else:
    st.info("No scars were detected in these photos.")

# --- region by region: the aligned comparison of each region of the baseline, with its uncertainty ----------
aligned_regions = (v.get("result") or {}).get("region_changes") or {}
if aligned_regions:
    st.subheader("Texture change by region")
    st.dataframe(table_rows([{"Region": name,
                   "Texture change (95 % interval)": change_with_interval(r.get("change_pct"), *(r.get("ci95_pct")
                                                                                                  or (None, None))),
                   "Verdict": significance_text(r.get("significant"), r.get("change_pct"))}
                  for name, r in aligned_regions.items()]), hide_index=True, key="region_change_table")
    st.caption("Each region of the before photo, with the after photo aligned onto it. " + NEGATIVE_IS_SMOOTHER)

# --- per photo: when both photos were measured by regions (full face, or a box drawn by hand) ----------
with services.show_errors(stop=False):
    regions_a = services.region_values(pid, by_id[a_id])
    regions_b = services.region_values(pid, by_id[b_id])
    if any(n in regions_b for n in regions_a):
        st.subheader("Region by region")
        rc, _ = st.columns([2, 3])
        rmetric = rc.selectbox("Measure", REGION_COLUMNS, key="compare_region_metric",
                               format_func=metric_heading)
        st.dataframe(table_rows(region_change_rows(regions_a, regions_b, rmetric)), hide_index=True,
                     key="region_table")
        st.caption("Each region as measured in each photo on its own (not aligned with each other): change = "
                   "after ÷ before − 1, without an interval; negative = less (smoother, fewer scars or pores). "
                   "Left and right are the patient's.")
