"""Relief dashboard — entry point: ``streamlit run app.py`` (or ``make run``).

Holds the navigation and the shared sidebar state; each page in ``pages/`` lays out one view and calls
:mod:`relief_app.services`. Data: ``RELIEF_DATA_DIR`` (default ``./data``) or ``RELIEF_DATABASE_URL``; on a first
start with an empty data folder a "Demo patient" is created from ``sample_images/`` (``RELIEF_DEMO=0`` turns
that off).

Visit mode: ``/?mode=visit&patient=<id>`` shows only that patient's progress in plain language — no sidebar,
no patient list, no navigation. The session stays locked to that patient (see :mod:`relief_app`).
"""
from __future__ import annotations

import streamlit as st

from relief_app import services

st.set_page_config(page_title="Relief — skin texture progress", page_icon="🩺", layout="wide")

# --- visit mode: decided once per session from the URL, then locked --------------------------------------
if "visit_lock" not in st.session_state:
    st.session_state["visit_lock"] = None
    if str(st.query_params.get("mode", "")).lower() == "visit":
        raw = str(st.query_params.get("patient", "")).strip()
        st.session_state["visit_lock"] = int(raw) if raw.isdigit() else -1  # -1: visit mode, no valid patient

if st.session_state["visit_lock"] is not None:
    page = st.navigation(
        [st.Page("pages/visit_mode.py", title="Your progress", icon="🌿", url_path="visit", default=True)],
        position="hidden",
    )
    page.run()
    st.stop()

# --- practitioner mode --------------------------------------------------------------------------------------
if "patient_id" not in st.session_state:
    st.session_state["patient_id"] = None

with services.show_errors():
    services.get_store()
    services.ensure_demo()
    patients = services.list_patients()

ids = [p.id for p in patients]
names = {p.id: (f"{p.name} ({p.code})" if p.code else p.name) for p in patients}
if st.session_state["patient_id"] is not None and st.session_state["patient_id"] not in ids:
    st.session_state["patient_id"] = None  # deleted, or another data folder
if st.session_state["patient_id"] is None and len(ids) == 1:
    st.session_state["patient_id"] = ids[0]


def _picked() -> None:
    st.session_state["patient_id"] = st.session_state["sidebar_patient"]


with st.sidebar:
    st.markdown("### Relief")
    if ids:
        # Keep the picker in step with selections made on the Patients page (set before the widget exists).
        if st.session_state.get("sidebar_patient") != st.session_state["patient_id"]:
            st.session_state["sidebar_patient"] = st.session_state["patient_id"]
        st.selectbox("Patient", ids, format_func=lambda i: names.get(i, str(i)), index=None,
                     placeholder="Choose a patient", key="sidebar_patient", on_change=_picked)
    else:
        st.caption("No patients yet — create one on the Patients page.")

pages = [
    st.Page("pages/patients.py", title="Patients", icon="👥", url_path="patients", default=True),
    st.Page("pages/new_visit.py", title="New visit", icon="📷", url_path="new-visit"),
    st.Page("pages/progress.py", title="Progress", icon="📈", url_path="progress"),
    st.Page("pages/compare.py", title="Compare visits", icon="🔍", url_path="compare"),
    st.Page("pages/visit_mode.py", title="Visit mode", icon="🌿", url_path="visit"),
]
st.navigation(pages).run()

with st.sidebar:
    import analyzer

    st.caption(f"Algorithm version {analyzer.ALGORITHM_VERSION}")
