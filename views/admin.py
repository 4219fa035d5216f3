"""Accounts and audit log of the admin's clinic (the page is listed only for admins; storage refuses others)."""
import datetime as dt

import streamlit as st

from relief_app import services
from relief_app.auth import sso_configured
from relief_app.text import md_escape as esc
from relief_app.text import table_rows
from storage.access import ROLES
from storage.audit import ACTIONS

st.title("Accounts and audit")
actor = services.current_actor()
if not services.can("admin"):
    st.info("Only an admin of the clinic sees this page.")
    st.stop()
st.caption(f"Clinic {esc(actor.clinic_code)}")

#: How an account signs in, by (has a password, has an e-mail for single sign-on).
_SIGN_IN = {(True, False): "password", (True, True): "password or single sign-on",
            (False, True): "single sign-on only", (False, False): "none"}
tab_accounts, tab_audit, tab_export = st.tabs(["Accounts", "Audit log", "Export"])
with tab_accounts:
    if st.session_state.get("admin_flash"):
        st.success(st.session_state.pop("admin_flash"))
    with services.show_errors():
        rows = services.accounts()
    st.dataframe(table_rows([{"User": a.username, "Role": a.role, "E-mail": a.email or "",
                   "Sign-in": _SIGN_IN[a.has_password, a.email is not None], "Disabled": a.disabled,
                   "Must change password": a.must_change_password,
                   "Locked until": a.locked_until.astimezone().strftime("%d %b %H:%M") if a.locked_until and
                   a.locked_until > dt.datetime.now(dt.timezone.utc) else "",
                   "Last sign-in": a.last_sign_in.astimezone().strftime("%d %b %Y %H:%M") if a.last_sign_in else "",
                   } for a in rows]), hide_index=True, key="accounts_table")
    sso = sso_configured()
    if not sso:
        st.caption("Single sign-on is not set up on this server (README, \"Single sign-on\"), so every account "
                   "needs a password: \"Single sign-on only\" is offered once it is.")
    add_col, manage_col = st.columns(2)
    with add_col:
        st.subheader("New account")
        if st.session_state.pop("account_form_done", False):  # created: an empty form for the next one
            for k in ("new_account_name", "new_account_password", "new_account_email"):
                st.session_state[k] = ""
            st.session_state["new_account_sso_only"] = False
        # (not cleared on submit: a refused form keeps what was typed, so that a retry does not lose the e-mail)
        with st.form("add_account"):
            name = st.text_input("User name", key="new_account_name", max_chars=services.TEXT_LIMITS["user_name"])
            role = st.selectbox("Role", ROLES, index=1, key="new_account_role")
            pw = st.text_input("One-time password (at least 12 characters)", type="password",
                               key="new_account_password")
            email = st.text_input("E-mail (for single sign-on)", key="new_account_email",
                                  help="The address your identity provider reports for this person; with single "
                                       "sign-on set up, it signs them in to this account.")
            sso_only = st.checkbox("Single sign-on only (no password)", key="new_account_sso_only", disabled=not sso,
                                   help="The person signs in only through your identity provider, with its second "
                                        "factor if it asks for one; the password above is not used.")
            if st.form_submit_button("Create account", key="create_account"):
                with services.show_errors(stop=False):
                    sso_only = sso_only and sso
                    services.add_account(name, role=role, password=None if sso_only else pw,
                                         email=email.strip() or None)
                    st.session_state["admin_flash"] = (
                        f"Created {esc(name)} ({role}); they sign in through single sign-on only." if sso_only else
                        f"Created {esc(name)} ({role}); they choose their own password at the first sign-in.")
                    st.session_state["account_form_done"] = True
                    st.rerun()
    with manage_col:
        st.subheader("Manage an account")
        others = [a.username for a in rows]
        who = st.selectbox("Account", others, key="manage_account", index=None, placeholder="Choose an account")
        if who:
            current = next(a for a in rows if a.username == who)
            label = "Enable" if current.disabled else "Disable"
            # Disabling cannot be undone for the patient links the account issued: it asks first.
            sure = current.disabled or st.checkbox(
                f"Disable {esc(who)}: their sessions end now, and every patient link they issued is revoked for good",
                key=f"confirm_disable_{who}")  # (per account: a tick given for one must not carry to the next)
            if st.button(label, key="toggle_account", disabled=not sure):
                with services.show_errors(stop=False):
                    services.set_account_disabled(who, not current.disabled)
                    st.session_state["admin_flash"] = f"{label}d {esc(who)}." + (
                        "" if current.disabled else " Their sessions end, and the patient links they issued are "
                        "revoked (a patient who still needs one gets a new link).")
                    st.rerun()
            # A password that may have been stolen: the patient links its thief issued would outlive it (they end
            # with the account only when it is disabled). Offered with both ways of ending the password below.
            n_links = services.open_links_of(who) if not current.disabled else 0
            revoke = bool(n_links) and st.checkbox(
                f"The password may have been stolen: also revoke the {n_links} open patient link(s) {esc(who)} issued "
                "(a forgotten password leaves them; patients who still need one get a new link)",
                key=f"revoke_links_{who}")  # (per account, as the disable tick)
            revoked = " The patient links they issued are revoked." if revoke else ""
            if current.has_password and current.email and current.id != actor.account_id:
                # Two-factor sign-in: with no password, only the identity provider (and its second factor) lets
                # the person in. Giving a password back is "Reset password" below.
                sure_sso = st.checkbox(f"Make {esc(who)} single sign-on only: their password is deleted and their "
                                       "sessions end", key=f"confirm_sso_only_{who}", disabled=not sso)
                if st.button("Single sign-on only", key="remove_password", disabled=not (sso and sure_sso)):
                    with services.show_errors(stop=False):
                        services.remove_account_password(who, revoke_links=revoke)
                        st.session_state["admin_flash"] = (f"{esc(who)} now signs in through single sign-on "
                                                           f"only.{revoked}")
                        st.rerun()
            with st.form("reset_password", clear_on_submit=True):
                new_pw = st.text_input("New one-time password", type="password", key="reset_password_value")
                if st.form_submit_button("Reset password", key="reset_password_submit"):
                    with services.show_errors(stop=False):
                        services.reset_account_password(who, new_pw, revoke_links=revoke)
                        st.session_state["admin_flash"] = (f"Reset the password of {esc(who)}; they choose a new "
                                                           f"one at the next sign-in.{revoked}")
                        st.rerun()

with tab_audit:
    f1, f2, f3 = st.columns(3)
    since = f1.date_input("Since", value=dt.date.today() - dt.timedelta(days=7), key="audit_since")
    action = f2.selectbox("Action", ["(all)", *ACTIONS], key="audit_action")
    who = f3.text_input("Account", key="audit_account")
    with services.show_errors():
        events = services.audit_events(since=since, action=None if action == "(all)" else action,
                                       account=who.strip() or None, limit=2000)
    st.dataframe(table_rows([{"Time": e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"), "Account": e.account,
                   "Action": e.action, "Patient": e.patient_id, "Outcome": e.outcome, "Detail": e.detail}
                  for e in events]), hide_index=True, key="audit_table")
    st.caption(f"{len(events)} event(s), newest first. The audit log is append-only: nobody can edit or delete a "
               "row, in the app or in the database.")

with tab_export:
    st.caption("Every patient of the clinic: measurements, comparisons and treatments as CSV files and an Excel "
               "workbook. A de-identified export (no names, notes or dates; codes replaced by pseudonyms) holds only "
               "patients whose consent to teaching and marketing use is in force (and who have not withdrawn their "
               "consent to clinical photography).")
    deid = st.checkbox("De-identify", value=True, key="export_deidentify")
    if st.button("Prepare the export", key="prepare_clinic_export"):
        with services.show_errors(stop=False):
            data, counts = services.clinic_export(deidentify=deid)
            st.session_state["clinic_export"] = ((deid, services.clinic_state()), data, counts)
    ready = st.session_state.get("clinic_export")
    # Offered only as it was prepared: identified data never goes out under a ticked "De-identify", and nothing
    # saved since is missing from it.
    if ready and ready[0] == (deid, services.clinic_state()):
        included, left_out = ready[2]
        st.caption(f"{included} patient(s) in the export" + (
            f"; {left_out} left out for lack of consent to teaching and marketing use (or a withdrawn consent to "
            "clinical photography)" if left_out else "") + ".")
        st.download_button("Download (ZIP)", ready[1], file_name="relief-export.zip",
                           mime="application/zip", key="download_clinic_export", on_click="ignore")
