"""Visit mode: one patient's progress in large, plain language — for the patient to look at.

Opened as ``/?mode=visit&patient=<id>`` (app.py then shows only this page, without sidebar or navigation, and
locks the session to that patient). From the practitioner's navigation it previews the selected patient and
gives the link. It never shows another patient's name or data.
"""
import streamlit as st

from relief_app import charts, services
from relief_app.text import visit_sentence
from analyzer.errors import ReliefError

locked = st.session_state.get("visit_lock")
if locked is not None:
    st.markdown("<style>[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'] "
                "{display: none;}</style>", unsafe_allow_html=True)
    pid = locked
    if pid < 0:
        st.info("This visit-mode link has no patient; ask the practitioner for the right link.")
        st.stop()
else:
    pid = services.require_patient()
    st.info("Preview of visit mode. Show the patient this page on its own — with no sidebar and no other "
            f"patients — by opening [this link](/?mode=visit&patient={pid}) (it opens a separate, locked view).")

try:
    patient = services.patient(pid)
    regions = services.regions(pid)
except ReliefError:
    # Same words whether the id does not exist or belongs to nobody: nothing is revealed.
    st.info("No progress to show for this link; ask the practitioner for the right link.")
    st.stop()

first_name = patient.name.split()[0] if patient.name.split() else patient.name
st.title(f"Your skin texture, {first_name}")
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
sentence = visit_sentence(None if last.is_baseline else last.change, last.low, last.high, last.significant)
st.markdown(f"## {sentence}")
weeks = last.weeks
st.markdown(f"### {region.capitalize()} · {len(series)} visit(s) · last photo {last.date:%d %B %Y}"
            + (f" · week {weeks:.0f} after your first treatment" if points[-1].weeks_since_first_treatment
               is not None else ""))

tx = services.treatments(pid)
if len(series) > 1:
    fig = charts.progress_figure(series, tx, metric="roughness_index", first_treatment=tx[0].date if tx else None,
                                 height=480, large=True)
    st.plotly_chart(fig, key="visit_chart", config={"displayModeBar": False})
    st.caption("Below the line = smoother than at your first visit. Bars show the range the true change lies in. "
               "New collagen forms mostly 6–8 weeks after each treatment (green bands).")

    photos = services.photos(pid, region)
    first, latest = photos[0], photos[-1]
    with services.show_errors(stop=False):
        with st.spinner("Preparing your before and after photos…"):
            view = services.compare_views(pid, first, latest)
        b, a = st.columns(2)
        b.image(view["baseline"], caption=f"Before — {first.visit_date:%d %B %Y}", width="stretch")
        a.image(view["followup"], caption=f"Now — {latest.visit_date:%d %B %Y}", width="stretch")
