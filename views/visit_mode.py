"""Visit mode: one patient's progress in large, plain language — for the patient to look at.

Opened by a patient link ``/?link=<token>`` (app.py then shows only this page, without sidebar or navigation,
and the session is locked to the link's patient: storage refuses every other patient). From the practitioner's
navigation it previews the selected patient. It never shows another patient's name or data.
"""
import streamlit as st

from relief_app import charts, images, services, visits
from relief_app.text import md_escape as esc
from analyzer.errors import ReliefError

actor = services.current_actor()
if actor is not None and actor.kind == "link":
    # Opened by a patient link: app.py shows only this page, without sidebar or navigation.
    st.markdown("<style>[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'] "
                "{display: none;}</style>", unsafe_allow_html=True)
    pid = actor.patient_id
else:
    if st.session_state.get("patient_id") is None:
        st.title("Visit mode")
    pid = services.require_patient()
    st.info("Preview of visit mode. To show it to the patient on its own — no sidebar, no other patients — create "
            "a patient link on the **Patients** page: it opens this view for this patient only, read-only, until it "
            "expires or is revoked.")

try:
    patient = services.patient(pid)
    regions = services.regions(pid)
except ReliefError:
    st.info("No progress to show for this link; ask the practitioner for the right link.")
    st.stop()

first_name = patient.name.split()[0] if patient.name.split() else patient.name
st.title(f"Your skin texture, {esc(first_name, limit=60)}")
if not regions:
    st.markdown("## Your first photos will be taken today — they are the starting point.")
    st.stop()

# The region with most visits first; a choice only among this patient's own regions.
counts = {r: len(services.photos(pid, r)) for r in regions}
ordered = sorted(regions, key=lambda r: (-counts[r], r))
region = ordered[0] if len(ordered) == 1 else st.selectbox("Area", ordered, key="visit_region_pick")

points = services.progress(pid, region)
series = charts.progress_series(points, "roughness_index")
last = series[-1]
ids = visits.before_after_ids(points)
pair = view = failed = values = None
if ids is not None:
    by_id = {ph.id: ph for ph in services.photos(pid, region)}
    pair = by_id[ids[0]], by_id[ids[1]]
if last.change is None and not last.is_baseline and pair is not None:
    # Not stored (a link stores nothing): the comparison this page computes for its before/after photos anyway
    # gives the sentence (computed once: a failure is not cached, and the photos below say it).
    try:
        view = services.compare_views(pid, *pair)
        values = view["values"]
    except ReliefError as err:
        failed = err
sentence = visits.latest_sentence(last, values)
st.markdown(f"## {sentence}")
weeks = last.weeks
st.markdown(f"### {esc(region.capitalize())} · {len(series)} visit(s) · last photo {last.date:%d %B %Y}"
            + (f" · week {weeks:.0f} after your first treatment" if points[-1].weeks_since_first_treatment
               is not None else ""))

tx = services.treatments(pid)
if len(series) > 1:
    fig = charts.progress_figure(series, tx, metric="roughness_index", first_treatment=tx[0].date if tx else None,
                                 height=480, large=True)
    st.plotly_chart(fig, key="visit_chart", config={"displayModeBar": False})
    st.caption("Below the line = smoother than at your first visit. Bars show the range the true change lies in. "
               "Dashed lines are your treatments; new collagen forms mostly 6–8 weeks after each (green bands).")

    # The photos the chart and the sentence are about: the baseline and the latest visit's photo that counts.
    if pair is not None:
        first, latest = pair
        with services.show_errors(stop=False, instead="The before and after photos of this visit could not be "
                                                      "lined up — your practitioner will show you the photos"):
            if failed is not None:
                raise failed
            if view is None:
                with st.spinner("Preparing your before and after photos…"):
                    view = services.compare_views(pid, first, latest)
            b, a = st.columns(2)
            b.html(images.figure(view["baseline"], caption=f"Before — {first.visit_date:%d %B %Y}"))
            a.html(images.figure(view["followup"], caption=f"Now — {latest.visit_date:%d %B %Y}"))
