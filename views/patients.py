"""Patients: search, select, create and edit; each row shows the latest change vs baseline."""
import streamlit as st

from relief_app import services
from relief_app.text import change_with_interval, significance_text

if "patient_id" not in st.session_state:
    st.session_state["patient_id"] = None


def _select(pid: int) -> None:
    st.session_state["patient_id"] = pid


st.title("Patients")
if st.session_state.get("flash"):
    st.success(st.session_state.pop("flash"))
st.caption("Latest change = texture roughness at the most recent visit compared with the first visit of that "
           "region; negative = smoother. The interval in brackets is the 95 % range.")

search = st.text_input("Search by name or code", key="patient_search", placeholder="e.g. Smith or P-001")
with services.show_errors():
    rows = services.list_patients(search)

if not rows:
    st.info("No patient matches this search." if search.strip() else "No patients yet — create the first below.")
else:
    head = st.columns([3, 1, 2, 4, 1.2])
    for col, label in zip(head, ("**Patient**", "**Visits**", "**Last visit**", "**Latest change vs baseline**",
                                 "")):
        col.markdown(label)
    for p in rows:
        c = st.columns([3, 1, 2, 4, 1.2])
        selected = p.id == st.session_state["patient_id"]
        c[0].markdown(("▶ " if selected else "") + f"**{p.name}**" + (f" · {p.code}" if p.code else ""))
        c[1].markdown(str(p.n_visits))
        c[2].markdown(p.last_visit.strftime("%d %b %Y") if p.last_visit else "—")
        if p.change_pct is not None:
            text = change_with_interval(p.change_pct, p.change_ci_low, p.change_ci_high)
            c[3].markdown(f"{text}, {significance_text(p.change_significant)} ({p.change_region})")
        else:
            c[3].markdown("—")
        c[4].button("Selected" if selected else "Open", key=f"open_patient_{p.id}", disabled=selected,
                     on_click=_select, args=(p.id,))

st.divider()
left, right = st.columns(2)
with left:
    st.subheader("New patient")
    with st.form("new_patient", clear_on_submit=True):
        name = st.text_input("Name", key="new_patient_name")
        code = st.text_input("Clinic code (optional, unique)", key="new_patient_code")
        notes = st.text_area("Notes (optional)", key="new_patient_notes", height=80)
        if st.form_submit_button("Create patient", key="create_patient", type="primary"):
            with services.show_errors(stop=False):
                rec = services.create_patient(name, code or None, notes)
                st.session_state["patient_id"] = rec.id
                st.session_state["flash"] = f"Created {rec.name}; they are now the selected patient."
                st.rerun()  # the sidebar picker and the list above were drawn before the patient existed

with right:
    pid = st.session_state["patient_id"]
    if pid is not None:
        with services.show_errors():
            current = services.patient(pid)
        if st.session_state.get("edit_for") != pid:  # load the selected patient into the form's fields
            st.session_state["edit_for"] = pid
            st.session_state["edit_patient_name"] = current.name
            st.session_state["edit_patient_code"] = current.code or ""
            st.session_state["edit_patient_notes"] = current.notes
        st.subheader(f"Edit {current.name}")
        with st.form("edit_patient"):
            new_name = st.text_input("Name", key="edit_patient_name")
            new_code = st.text_input("Clinic code", key="edit_patient_code")
            new_notes = st.text_area("Notes", key="edit_patient_notes", height=80)
            if st.form_submit_button("Save changes", key="update_patient"):
                with services.show_errors(stop=False):
                    rec = services.update_patient(pid, name=new_name, code=new_code or None, notes=new_notes)
                    st.session_state["flash"] = f"Saved {rec.name}."
                    st.rerun()
