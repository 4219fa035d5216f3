"""Progress of one patient: % change from the first visit over the weeks of treatment."""
import streamlit as st

from relief_app import charts, services, visits
from relief_app.text import md_escape as esc
from relief_app.text import table_rows
from relief_app.text import (NEGATIVE_IS_SMOOTHER, PROGRESS_METRICS, change_text, change_with_interval, finite,
                             metric_heading, metric_label, metric_meaning, not_alike_markdown,
                             recomputed_text, significance_text)

for key, default in (("patient_id", None), ("progress_computed", set())):
    if key not in st.session_state:
        st.session_state[key] = default

if st.session_state.get("progress_flash"):  # (before the page may end: the last visit with photos deleted)
    st.success(st.session_state.pop("progress_flash"))

pid, _, regions = services.patient_page(
    "Progress", without_photos="No photos yet — record the first visit on the **New visit** page.")

c1, c2 = st.columns(2)
region = c1.selectbox("Region", regions, key="progress_region")
metric = c2.selectbox("Measure", PROGRESS_METRICS, key="progress_metric",
                      format_func=metric_heading)
st.caption(f"{metric_label(metric)}: {metric_meaning(metric)}")

with services.show_errors():
    points = services.progress(pid, region)
    todo = visits.lacking_results(points)
    once = (pid, region, services.revision())
    if todo and once not in st.session_state["progress_computed"]:
        # Results of an older algorithm version (or visits saved elsewhere): compute them once, then store them.
        with st.spinner(f"Measuring {len(todo)} visit(s) with the current algorithm…"):
            problems = services.compute_missing(pid, region, points)
        st.session_state["progress_computed"].add((pid, region, services.revision()))
        st.session_state["progress_problems"] = {(pid, region): problems}
        points = services.progress(pid, region)
    tx = services.treatments(pid)
    version_before, version_now, moved = services.recomputed(pid, region)

if moved:  # numbers a practitioner may have seen before, now read differently: say so, with both
    st.info(recomputed_text(version_before, version_now, moved))

for problem in (st.session_state.get("progress_problems") or {}).get((pid, region), []):
    st.warning(f"Not compared with the first visit — {esc(problem, limit=None)}")
series = charts.progress_series(points, metric)
first_tx = tx[0].date if tx else None
fig = charts.progress_figure(series, tx, metric=metric, first_treatment=first_tx)
last = series[-1]
if len(series) > 1:
    m1, m2 = st.columns(2)
    m1.metric(f"Latest change ({last.date:%d %b %Y})", change_with_interval(last.change, last.low, last.high))
    m2.metric("Verdict", significance_text(last.significant, last.change)
              or ("not compared" if last.change is None else "no interval for this measure"))
    if last.caveats and finite(last.change):  # the headline must not stand without it (it was only in the table)
        st.warning(not_alike_markdown(last.caveats))
st.plotly_chart(fig, key="progress_chart", config={"displaylogo": False})
if metric == "roughness_index":
    st.caption(NEGATIVE_IS_SMOOTHER + " Dashed lines: treatments; green: the 6–8 week collagen window after each; "
               "dotted: the 12-week evaluation. Filled markers are significant changes, open markers are within "
               "measurement noise; diamonds: photos not taken like the first visit's (see the table). A visit whose "
               "photo could not be compared with the first visit has no point.")
else:  # pigment, pores, ...: no aligned comparison, no interval, no verdict
    st.caption("For this measure the change is the ratio of the two photos' own values, in % of the first visit's "
               "(negative = less), without an interval: it cannot be told apart from measurement noise, so no "
               "marker is filled. Dashed lines: treatments; green: the 6–8 week collagen window after each.")

rows = [{
    "Date": s.date.strftime("%d %b %Y"),
    "Week": round(s.weeks, 1),
    metric_heading(metric): round(s.value, 2) if finite(s.value) else None,
    "Change vs first visit": "reference" if s.is_baseline else (
        change_text(s.change) if finite(s.change) else "not compared"),
    "95 % interval": (f"{change_text(s.low)} to {change_text(s.high)}" if finite(s.low) and finite(s.high)
                      else ""),
    "Verdict": significance_text(s.significant, s.change),
    "Photos taken alike": "" if s.is_baseline or not finite(s.change) else (
        "no — " + "; ".join(s.caveats) if s.caveats else "yes"),
} for s in series]
st.dataframe(table_rows(rows), hide_index=True, key="progress_table")

if tx:
    st.subheader("Treatments")
    st.dataframe(table_rows([{"Date": t.date.strftime("%d %b %Y"), "Procedure": t.procedure,
                   "Needle depth (mm)": t.needle_depth_mm, "Area": t.area, "Notes": t.notes} for t in tx]),
                 hide_index=True, key="treatment_table")

st.subheader("Report and data")
# A prepared file is offered only while it is what the page shows: for this patient, this paper, and the same
# visits, treatments and record (a visit saved meanwhile would otherwise go home in an out-of-date report).
r1, r2 = st.columns(2)
with r1:
    paper = st.radio("Paper", ["A4", "Letter"], horizontal=True, key="report_paper")
    if st.button("Prepare the PDF report", key="prepare_report"):
        with services.show_errors(stop=False):
            with st.spinner("Writing the report…"):
                pdf = services.report_pdf(pid, paper=paper)
                st.session_state["report_pdf"] = ((pid, paper, services.patient_state(pid)), pdf)
    ready = st.session_state.get("report_pdf")
    if ready and ready[0] == (pid, paper, services.patient_state(pid)):
        st.download_button("Download the report (PDF)", ready[1], file_name=f"relief-report-{pid}.pdf",
                           mime="application/pdf", key="download_report", on_click="ignore")
with r2:
    st.caption("This patient's measurements, comparisons and treatments as CSV files and an Excel workbook.")
    if st.button("Prepare the data export", key="prepare_export"):
        with services.show_errors(stop=False):
            data = services.export_zip(patient_id=pid)
            st.session_state["export_zip"] = ((pid, services.patient_state(pid)), data)
    ready = st.session_state.get("export_zip")
    if ready and ready[0] == (pid, services.patient_state(pid)):
        st.download_button("Download the data (ZIP)", ready[1], file_name=f"relief-export-{pid}.zip",
                           mime="application/zip", key="download_export", on_click="ignore")

if services.can("write"):
    with st.expander("Delete a visit"):
        st.caption("Erases one visit for good: its photos, their measurements and comparisons (for example when "
                   "the patient asks for their photos to be erased). The next visit of each region becomes its "
                   "baseline. Recorded in the audit log.")
        with services.show_errors():
            visit_list = services.visits_of(pid)
        # Each label names its visit (Streamlit tells options apart by their labels): two visits of one day and
        # region (a photo retaken and saved again) had the same label, and choosing the first returned the last.
        by_id = {v.id: v for v in visit_list}

        def saved(v) -> str:
            return f"saved {v.created_at.astimezone():%d %b %Y %H:%M}, visit no. {v.id}"

        gone_id = st.selectbox(
            "Visit", list(by_id), key="delete_visit_choice",
            format_func=lambda i: f"{by_id[i].date:%d %b %Y} — {len(by_id[i].photos)} photo(s)"
            + (f": {', '.join(sorted({ph.region for ph in by_id[i].photos}))}" if by_id[i].photos else "")
            + f" ({saved(by_id[i])})")
        gone = by_id.get(gone_id)
        if gone is not None:
            sure = st.checkbox(f"Delete the visit of {gone.date:%d %b %Y} ({saved(gone)}) and its {len(gone.photos)} "
                               "photo(s) for good", key=f"confirm_delete_visit_{gone.id}")
            if st.button("Delete visit", key="delete_visit", disabled=not sure, type="primary"):
                with services.show_errors(stop=False):
                    services.delete_visit(pid, gone.id)
                    st.session_state["progress_flash"] = f"Deleted the visit of {gone.date:%d %b %Y} and its photos."
                    st.rerun()
