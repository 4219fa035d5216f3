"""Relief dashboard — entry point: ``streamlit run app.py`` (or ``make run``).

Holds the navigation and the shared sidebar state; each page in ``views/`` lays out one view and calls
:mod:`relief_app.services`. Data: ``RELIEF_DATA_DIR`` (default ``./data``) or ``RELIEF_DATABASE_URL``; on a first
start with an empty data folder a "Demo patient" is created from ``sample_images/`` (``RELIEF_DEMO=0`` turns
that off).

Nothing about a patient is read before :func:`relief_app.auth.gate` has decided who is acting: a signed-in
account (the sign-in form otherwise ends the page) or a patient link ``/?link=<token>``, which shows only that
patient's progress in plain language — no sidebar, no patient list, no navigation — and locks the session to it.
The old ``/?mode=visit&patient=<id>`` form opens nothing. Storage scopes every read by the actor's clinic and role.

Why ``views/`` and not ``pages/``: Streamlit treats a folder named ``pages`` beside the entry point as the old
multipage layout until the first ``st.navigation`` call of the process, so the first request after a server
start for e.g. ``/compare`` would run that page directly — without this file, its sidebar or visit-mode lock.
"""
from __future__ import annotations

import streamlit as st

from relief_app import auth, services, text

st.set_page_config(page_title="Relief — skin texture progress", page_icon=":material/healing:", layout="wide")

# --- who is acting: a patient link, a signed-in account, or nobody (then the sign-in form ends the page) -------
with services.show_errors():
    services.get_store()
    services.ensure_demo()  # first start: the demo patient (clinic MAIN), before anyone signs in
mode, actor = auth.gate()

if mode == auth.Mode.LINK:
    page = st.navigation(
        [st.Page("views/visit_mode.py", title="Your progress", icon=":material/spa:", default=True)],
        position="hidden",
    )
    page.run()
    st.stop()

# --- signed in -------------------------------------------------------------------------------------------------
if "patient_id" not in st.session_state:
    st.session_state["patient_id"] = None

with services.show_errors():
    patients = services.list_patients()

ids = [p.id for p in patients]
names = {p.id: (f"{p.name} ({p.code})" if p.code else p.name) for p in patients}
if st.session_state["patient_id"] is not None and st.session_state["patient_id"] not in ids:
    st.session_state["patient_id"] = None  # deleted, or another data folder
if st.session_state["patient_id"] is None and len(ids) == 1:
    st.session_state["patient_id"] = ids[0]
if st.session_state["patient_id"] is not None:
    with services.show_errors():
        services.open_patient(st.session_state["patient_id"])  # audited once per selection


def _picked() -> None:
    st.session_state["patient_id"] = st.session_state["sidebar_patient"]


with st.sidebar:
    st.markdown("### Relief")
    st.caption(f"Signed in as **{text.md_escape(actor.name)}** · {actor.role} · "
               f"clinic {text.md_escape(actor.clinic_code)}")
    if st.button("Sign out", key="sign_out"):
        auth.sign_out("You are signed out.")
        st.rerun()
    if ids:
        # Keep the picker in step with selections made on the Patients page (set before the widget exists).
        if st.session_state.get("sidebar_patient") != st.session_state["patient_id"]:
            st.session_state["sidebar_patient"] = st.session_state["patient_id"]
        st.selectbox("Patient", ids, format_func=lambda i: names.get(i, str(i)), index=None,
                     placeholder="Choose a patient", key="sidebar_patient", on_change=_picked)
    else:
        st.caption("No patients yet — create one on the Patients page.")

# The default page is served at "/" (Streamlit ignores its url_path, and "/patients" would be "Page not found"),
# so it gets none.
pages = [
    st.Page("views/patients.py", title="Patients", icon=":material/groups:", default=True),
    *([st.Page("views/new_visit.py", title="New visit", icon=":material/add_a_photo:", url_path="new-visit")]
      if actor.can("write") else []),  # (a viewer records nothing: the page would only say so)
    st.Page("views/progress.py", title="Progress", icon=":material/show_chart:", url_path="progress"),
    st.Page("views/compare.py", title="Compare visits", icon=":material/compare:", url_path="compare"),
    st.Page("views/visit_mode.py", title="Visit mode", icon=":material/spa:", url_path="visit"),
]
if actor.can("admin"):
    pages.append(st.Page("views/admin.py", title="Accounts and audit", icon=":material/shield_person:",
                         url_path="admin"))
st.navigation(pages).run()

with st.sidebar:
    import analyzer

    st.caption(f"Algorithm version {analyzer.ALGORITHM_VERSION}")
