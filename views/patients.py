"""Patients: search, select, create and edit; each row shows the latest change vs baseline."""
import datetime as dt

import streamlit as st

from relief_app import images, services, sharing
from relief_app.text import change_with_interval, significance_text
from relief_app.text import md_escape as esc

if "patient_id" not in st.session_state:
    st.session_state["patient_id"] = None


def _select(pid: int) -> None:
    st.session_state["patient_id"] = pid


def _consent_and_links(pid: int) -> None:
    """Consent of the selected patient (everyone sees it; practitioners record it) and their patient links."""
    st.divider()
    cons_col, link_col = st.columns(2)
    with cons_col:
        st.subheader("Consent")
        with services.show_errors():
            status = services.consent_status(pid)
        for kind, label, rec in (("clinical", "Clinical photography", status.clinical),
                                 ("marketing", "Teaching and marketing", status.marketing)):
            if rec is None:
                st.markdown(f"**{label}:** not recorded")
            else:
                state = "given" if rec.granted else "**withdrawn**"
                st.markdown(f"**{label}:** {state} on {rec.date:%d %b %Y} (recorded by {esc(rec.recorded_by)})")
        if status.clinical is None:
            st.warning("No photo can be saved for this patient until consent to clinical photography is recorded.")
        elif not status.clinical.granted:
            st.warning(f"Consent to clinical photography withdrawn on {status.clinical.date:%d %b %Y}: no new photo "
                       "can be saved and no patient link opens (those open at the withdrawal were revoked; a new one "
                       "needs the consent recorded again). The photos already taken stay in the patient's record; if "
                       "the patient asks for them to be erased, delete those visits (Progress page, \"Delete a "
                       "visit\") or the patient.")
        if status.marketing is not None and not status.marketing.granted:
            st.info("Marketing consent withdrawn: this patient's photos and data are left out of teaching and "
                    "marketing use and of de-identified exports.")
        if services.can("write"):
            with st.form("consent_form"):
                kind = st.radio("Consent", ["clinical", "marketing"], horizontal=True, key="consent_kind",
                                format_func=lambda k: {"clinical": "Clinical photography",
                                                       "marketing": "Teaching and marketing"}[k])
                decision = st.radio("Decision", ["given", "withdrawn"], horizontal=True, key="consent_decision")
                day = st.date_input("Date the patient decided", value=dt.date.today(), key="consent_date",
                                    max_value=dt.date.today())
                if st.form_submit_button("Record consent", key="record_consent"):
                    with services.show_errors(stop=False):
                        now = getattr(services.record_consent(pid, kind, granted=decision == "given", date=day), kind)
                        if kind == "clinical" and not now.granted and \
                                st.session_state.get("new_link", (None,))[0] == pid:
                            st.session_state.pop("new_link")  # revoked with the withdrawal: not shown any longer
                        st.session_state["flash"] = "Consent recorded." if (now.date, now.granted) == (
                            day, decision == "given") else (
                            f"Recorded in the history (it counts for visits from {day:%d %b %Y} on). The patient's "
                            f"later decision stays in force: {'given' if now.granted else 'withdrawn'} on "
                            f"{now.date:%d %b %Y}.")
                        st.rerun()
    with link_col:
        st.subheader("Patient link")
        if not services.can("write"):
            st.caption("Practitioners can give the patient a read-only link to their progress.")
        else:
            st.caption("A read-only link to this patient's progress — for the consultation screen or the patient's "
                       "own phone. Anyone holding it sees this patient's progress until it expires or is revoked.")
            with st.form("link_form"):
                # Two weeks by default: long enough to look at at home after the visit (a link that ended the same
                # night surprised patients), short enough not to linger; up to 90 days, or today only.
                until = st.date_input("Valid until the end of", value=dt.date.today() + dt.timedelta(days=14),
                                      key="link_until", min_value=dt.date.today(),
                                      max_value=dt.date.today() + dt.timedelta(days=90),
                                      help="Choose today for a link shown only on the consultation screen.")
                if st.form_submit_button("Create link", key="issue_link"):
                    with services.show_errors(stop=False):
                        token, _ = services.issue_link(pid, expires_at=until)
                        st.session_state["new_link"] = (pid, sharing.link_url(token, sharing.base_url(st.context.url)))
            new = st.session_state.get("new_link")
            if new and new[0] == pid:
                st.code(new[1], language=None)
                st.html(images.figure(sharing.qr_png(new[1]), caption="Scan to open on a phone", max_width_px=220))
                st.caption("The link is shown only now; Relief keeps only a fingerprint of it.")
            with services.show_errors(stop=False):
                links = [x for x in services.links_of(pid) if x.active()]
                for x in links:
                    lc, rc = st.columns([3, 1])
                    lc.markdown(f"Link #{x.id} by {esc(x.created_by)} · valid until "
                                f"{x.expires_at.astimezone():%d %b %Y %H:%M}"
                                + (f" · last opened {x.last_used_at.astimezone():%d %b %H:%M}"
                                   if x.last_used_at else ""))
                    if rc.button("Revoke", key=f"revoke_link_{x.id}"):
                        services.revoke_link(pid, x.id)
                        if st.session_state.get("new_link", (None,))[0] == pid:
                            st.session_state.pop("new_link")
                        st.rerun()


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
    head = st.columns([3, 1, 2, 4, 1.8])
    for col, label in zip(head, ("**Patient**", "**Visits**", "**Last visit**", "**Latest change vs baseline**",
                                 "")):
        col.markdown(label)
    for p in rows:
        c = st.columns([3, 1, 2, 4, 1.8])
        selected = p.id == st.session_state["patient_id"]
        c[0].markdown(("▶ " if selected else "") + f"**{esc(p.name)}**" + (f" · {esc(p.code)}" if p.code else ""))
        c[1].markdown(str(p.n_visits))
        c[2].markdown(p.last_visit.strftime("%d %b %Y") if p.last_visit else "—")
        if p.change_pct is not None:
            text = change_with_interval(p.change_pct, p.change_ci_low, p.change_ci_high)
            c[3].markdown(f"{text}, {significance_text(p.change_significant, p.change_pct)} ({esc(p.change_region)})"
                          + (" — *photos not taken alike*" if p.change_caveats else ""))
        else:
            c[3].markdown("—")
        # The button names its patient (code, else name): a screen reader lists buttons by their text alone.
        whom = esc(p.code or p.name, limit=24)
        c[4].button(f"{'Selected' if selected else 'Open'} {whom}", key=f"open_patient_{p.id}", disabled=selected,
                    on_click=_select, args=(p.id,))

st.divider()
if not services.can("write"):
    if st.session_state["patient_id"] is not None:
        _consent_and_links(st.session_state["patient_id"])
    st.caption("Your role can look at patients but not create or edit them.")
    st.stop()
left, right = st.columns(2)
with left:
    st.subheader("New patient")
    # Cleared after a patient is created, not on every submit: a refused form (a code already in use) keeps what
    # was typed.
    if st.session_state.pop("clear_new_patient", False):
        for k in ("new_patient_name", "new_patient_code", "new_patient_notes"):
            st.session_state.pop(k, None)
    with st.form("new_patient"):
        name = st.text_input("Name", key="new_patient_name", max_chars=services.TEXT_LIMITS["patient_name"])
        code = st.text_input("Clinic code (optional, unique)", key="new_patient_code",
                             max_chars=services.TEXT_LIMITS["patient_code"])
        notes = st.text_area("Notes (optional)", key="new_patient_notes", height=80)
        if st.form_submit_button("Create patient", key="create_patient", type="primary"):
            with services.show_errors(stop=False):
                rec = services.create_patient(name, code or None, notes)
                st.session_state["patient_id"] = rec.id
                st.session_state["flash"] = f"Created {esc(rec.name)}; they are now the selected patient."
                st.session_state["clear_new_patient"] = True
                st.rerun()  # the sidebar picker and the list above were drawn before the patient existed

with right:
    pid = st.session_state["patient_id"]
    if pid is not None:
        with services.show_errors():
            current = services.patient(pid)
        # Load the selected patient into the form's fields (again after another page dropped the widgets' state).
        if st.session_state.get("edit_for") != pid or "edit_patient_name" not in st.session_state:
            st.session_state["edit_for"] = pid
            st.session_state["edit_patient_name"] = current.name
            st.session_state["edit_patient_code"] = current.code or ""
            st.session_state["edit_patient_notes"] = current.notes
        st.subheader(f"Edit {esc(current.name)}")
        with st.form("edit_patient"):
            new_name = st.text_input("Name", key="edit_patient_name", max_chars=services.TEXT_LIMITS["patient_name"])
            new_code = st.text_input("Clinic code", key="edit_patient_code",
                                     max_chars=services.TEXT_LIMITS["patient_code"])
            new_notes = st.text_area("Notes", key="edit_patient_notes", height=80)
            if st.form_submit_button("Save changes", key="update_patient"):
                with services.show_errors(stop=False):
                    rec = services.update_patient(pid, name=new_name, code=new_code or None, notes=new_notes)
                    st.session_state["flash"] = f"Saved {esc(rec.name)}."
                    st.rerun()
        with st.expander("Delete this patient"):
            st.caption("Deletes the patient with every visit, photo file, measurement, comparison, consent record "
                       "and link, at once and for good (the audit log keeps that it happened). Keep a report or an "
                       "export first if the record must be archived.")
            sure = st.checkbox(f"Yes, delete {esc(current.name, limit=80)} and all their photos",
                               key="delete_patient_confirm")
            if st.button("Delete patient", key="delete_patient", disabled=not sure, type="primary"):
                with services.show_errors(stop=False):
                    services.delete_patient(pid)
                    st.session_state["patient_id"] = None
                    st.session_state["flash"] = f"Deleted {esc(current.name)} and all their photos."
                    st.rerun()

if st.session_state["patient_id"] is not None:
    _consent_and_links(st.session_state["patient_id"])
