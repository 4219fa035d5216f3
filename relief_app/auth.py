"""Sign-in, sign-out, idle timeout and patient links on the Streamlit side.

:func:`gate` runs at the top of ``app.py`` on every page run, before anything about a patient is read. It leaves
the session's :class:`storage.Actor` in ``st.session_state["actor"]`` (which :mod:`relief_app.services` passes
to every storage call) or ends the page on the sign-in form. Storage decides what the actor may see; this module
only decides who the actor is.

Single sign-on (optional): with an ``[auth]`` section in ``.streamlit/secrets.toml`` the sign-in page also offers
Streamlit's ``st.login`` (OpenID Connect). Once the identity provider has sent the browser back, ``st.user``
carries its ID token's claims; :meth:`storage.Accounts.sign_in_sso` maps the e-mail to one Relief account (or
refuses, with the same line as a wrong password). Streamlit keeps that identity in a cookie, so a new browser
session of the same person signs in again without a click until the cookie is cleared: signing out, and the
idle timeout, therefore also call ``st.logout()``. A refused identity is kept out (one audit row per browser
session) and the page offers "Sign out of single sign-on" to clear it — calling ``st.logout()`` at once would
take the browser to the identity provider before the refusal could be read.

Session state: ``account_id``, ``session_stamp`` (its password's stamp when the session began: a password change
or reset elsewhere ends it) and ``last_active`` (a signed-in account), ``sso`` (it came from single sign-on),
``sso_refused`` (the refusal of this browser's single sign-on identity), ``link_token`` (a session opened by a
patient link; locked to it), ``link_refused`` (a link refused in this session: not tried, nor audited, again),
``actor`` (re-made on every run, so a disabled account, a revoked or expired link,
and the idle timeout take effect at once). Signing out (or being signed out) clears the whole session but
``sso_refused``.
"""
from __future__ import annotations

import os
import sys
import time

import streamlit as st

from streamlit.errors import StreamlitAuthError

from storage import Actor, NotFound, OptionError, SignInFailed
from storage.links import INVALID_LINK

from . import services
from .text import sentence_case

__all__ = ["gate", "sign_out", "idle_minutes", "sso_configured", "Mode"]

#: What survives signing out: the refusal of this browser's single sign-on identity (cleared by its own button).
#: Everything else in the session goes: who was signed in, and whatever their pages kept (a prepared export or
#: report, a new patient link, the selected patient, form values), so the next person at this browser finds none.
_KEEP_ON_SIGN_OUT = ("sso_refused",)


class Mode:
    SIGNED_OUT = "signed_out"
    ACCOUNT = "account"
    LINK = "link"


def idle_minutes() -> float:
    """Idle timeout in minutes: ``RELIEF_IDLE_MINUTES`` (default 30)."""
    try:
        return max(0.1, float(os.environ.get("RELIEF_IDLE_MINUTES", "30")))
    except ValueError:
        return 30.0


@st.cache_resource(show_spinner=False)
def _first_admin(key: str) -> bool:
    """On an empty store: create ``admin`` (``RELIEF_ADMIN_PASSWORD``, or a one-time password printed once to
    the server console). Once per process and data folder."""
    given = os.environ.get("RELIEF_ADMIN_PASSWORD") or None
    pw = services.get_store().accounts.ensure_first_admin(given)
    if pw:
        banner = ("\n" + "=" * 72 + "\nRelief: first start — sign in as user 'admin' with the one-time password\n\n"
                  f"    {pw}\n\nYou will be asked to choose a new password. This is shown only once.\n"
                  + "=" * 72 + "\n")
        print(banner, file=sys.stderr, flush=True)
    return True


def sso_configured() -> bool:
    """Whether single sign-on is set up: Streamlit found an ``[auth]`` section in its secrets (it then reports
    ``is_logged_in`` in ``st.user``, signed in or not)."""
    return "is_logged_in" in st.user.to_dict()


def _sso_identity() -> bool:
    """Whether this browser carries an identity from the identity provider (Streamlit's auth cookie)."""
    return sso_configured() and bool(st.user.get("is_logged_in"))


def _message(err: Exception) -> str:
    return sentence_case(str(err)) + "."


def _sso_sign_in() -> None:
    """Map this browser's single sign-on identity to its Relief account (once per browser session)."""
    claims = st.user.to_dict()
    verified = claims.get("email_verified", True)  # absent: the provider makes no statement, trust the address
    verified = verified is True or str(verified).strip().lower() == "true"
    try:
        actor = services.get_store().accounts.sign_in_sso(str(claims.get("email") or ""), verified=verified)
    except SignInFailed as err:
        st.session_state["sso_refused"] = _message(err)
        return
    _start_session(actor, sso=True)


def _start_session(actor: Actor, *, sso: bool = False) -> None:
    st.session_state.pop("sso_refused", None)
    st.session_state["account_id"] = actor.account_id
    st.session_state["last_active"] = time.time()
    st.session_state["actor"] = actor
    st.session_state["session_stamp"] = actor.credential_stamp
    if sso:
        st.session_state["sso"] = True


def _no_entry(message: str) -> None:
    """A page with nothing but ``message`` (no sidebar, no navigation); the page run ends here."""
    st.session_state["actor"] = None
    _hide_chrome()
    st.title("Relief")
    st.info(message)
    st.stop()


def _clear() -> None:
    for k in list(st.session_state.keys()):
        if k not in _KEEP_ON_SIGN_OUT:
            del st.session_state[k]


def sign_out(message: str | None = None) -> None:
    """End the session (audited). If the browser carries a single sign-on identity, also ``st.logout()``: the
    browser goes to the identity provider's sign-out and back, and this page run ends here."""
    actor = st.session_state.get("actor")
    if isinstance(actor, Actor) and actor.kind == "account":
        try:
            services.get_store().accounts.sign_out(actor)
        except Exception:  # noqa: BLE001 - signing out must always succeed locally
            pass
    _clear()
    if message:
        st.session_state["signin_flash"] = message
    if _sso_identity():
        # Clear the identity provider's cookie too, or the next page load would sign in again by itself. The
        # run ends here: a st.rerun() after st.logout() would drop its redirect of the browser.
        st.session_state.pop("sso_refused", None)
        st.logout()
        st.stop()


def _link_mode() -> Actor:
    """A session opened by a patient link: locked to it; re-checked on every run.

    The token leaves the address bar and the browser's history once the link is open (a shared consultation-room
    computer would otherwise offer it to the next person), and the session ends after the idle timeout like an
    account's: the patient opens the link again from their message.
    """
    store = services.get_store()
    token = st.session_state.get("link_token")
    now = time.time()
    if token is not None and now - float(st.session_state.get("last_active", now)) > idle_minutes() * 60:
        _clear()
        _no_entry(f"This page was closed after {idle_minutes():g} minutes without activity — open your link "
                  "again to see your progress.")
    try:
        if token is None:
            token = str(st.query_params.get("link", ""))
            if st.session_state.get("link_refused") == token:
                # Refused (and audited) once in this browser session: every rerun of the page would otherwise add
                # another row to the append-only audit log (a review added 50 from one session).
                _no_entry(_message(NotFound(INVALID_LINK)))
            try:
                actor = store.links.open(token)  # audited: link_used (or a failed use)
            except NotFound:
                st.session_state["link_refused"] = token
                raise
            st.session_state["link_token"] = token
            _forget_address()
        else:
            actor = store.links.actor(token)
    except NotFound as err:
        _no_entry(_message(err))
    st.session_state["actor"] = actor
    st.session_state["last_active"] = now
    _idle_watch()
    return actor


#: Replaces the page's own history entry by its address without ``?link=``. (Setting ``st.query_params`` would
#: add a new entry and leave the token in the one before it.) A constant script, no user text in it.
_FORGET_ADDRESS = ("<script>const w = window.parent; const u = new URL(w.location.href); u.searchParams.delete('link');"
                   " w.history.replaceState(w.history.state, '', u.pathname + u.search + u.hash);</script>")


def _forget_address() -> None:
    st.iframe(_FORGET_ADDRESS, height=1)


def _hide_chrome() -> None:
    st.markdown("<style>[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'] "
                "{display: none;}</style>", unsafe_allow_html=True)


def _sso_offer() -> None:
    """Single sign-on on the sign-in page: its button, or the refusal of this browser's identity."""
    if st.session_state.get("sso_refused"):
        st.error(st.session_state["sso_refused"])
        if st.button("Sign out of single sign-on", key="signin_sso_logout"):
            st.session_state.pop("sso_refused", None)
            st.logout()
    elif sso_configured():
        if st.button("Sign in with single sign-on", key="signin_sso", type="primary"):
            try:
                st.login()
            except StreamlitAuthError:
                st.error("Single sign-on is not fully set up on this server; sign in with your user name and "
                         "password, and tell your clinic's admin.")
        st.caption("Or with your Relief user name and password:")


def _sign_in_form() -> None:
    _hide_chrome()
    st.title("Relief")
    st.caption("Skin texture progress — sign in to continue.")
    _sso_offer()
    if st.session_state.get("signin_flash"):
        st.info(st.session_state.pop("signin_flash"))
    if services.get_store().accounts.first_start_pending():
        st.info("First start: sign in as **admin** with the one-time password printed in the console where Relief "
                "was started (or the one set with RELIEF_ADMIN_PASSWORD); you then choose your own.")
    with st.form("sign_in"):
        username = st.text_input("Username", key="signin_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", key="signin_submit", type="primary")
    if submitted:
        try:
            actor = services.get_store().accounts.sign_in(username, password)
        except SignInFailed as err:
            st.error(_message(err))
        else:
            _start_session(actor)
            st.rerun()
    st.stop()


def _change_password(actor: Actor) -> None:
    st.title("Choose your password")
    st.info("You signed in with a one-time password. Choose your own (at least 12 characters; a phrase of "
            "several words is easy to remember) to continue.")
    with st.form("change_password"):
        old = st.text_input("Current password", type="password", key="pw_old")
        new = st.text_input("New password", type="password", key="pw_new")
        again = st.text_input("New password again", type="password", key="pw_again")
        submitted = st.form_submit_button("Change password", key="pw_submit", type="primary")
    if submitted:
        if new != again:
            st.error("The two new passwords differ; type them again.")
        else:
            try:
                changed = services.get_store().accounts.change_password(actor, old, new)
            except (SignInFailed, OptionError) as err:
                st.error(_message(err))
            else:
                st.session_state["actor"] = changed
                st.session_state["session_stamp"] = changed.credential_stamp  # this session goes on; others end
                st.rerun()
    if st.button("Sign out", key="pw_sign_out"):
        sign_out()
        st.rerun()
    st.stop()


@st.fragment(run_every=60)
def _idle_watch() -> None:
    """Re-checks the idle timeout every minute even when nobody clicks (a screen left open is signed out)."""
    last = st.session_state.get("last_active")
    if last is not None and time.time() - last > idle_minutes() * 60:
        st.rerun(scope="app")


def gate() -> tuple[str, Actor]:
    """Who is acting in this page run: ``(Mode.LINK, actor)`` or ``(Mode.ACCOUNT, actor)``; otherwise the
    sign-in form (or the invalid-link message) is shown and the page ends here."""
    _first_admin(services.store_key())
    params = st.query_params
    if st.session_state.get("link_token") is not None or "link" in params:
        return Mode.LINK, _link_mode()
    if str(params.get("mode", "")).lower() == "visit":
        _no_entry("This link is not valid; ask your clinic for a new patient link.")  # the old counting-id form
    account_id = st.session_state.get("account_id")
    if account_id is None and "sso_refused" not in st.session_state and _sso_identity():
        _sso_sign_in()
        account_id = st.session_state.get("account_id")
    if account_id is None:
        st.session_state["actor"] = None
        _sign_in_form()
    now = time.time()
    if now - float(st.session_state.get("last_active", 0.0)) > idle_minutes() * 60:
        sign_out(f"You were signed out after {idle_minutes():g} minutes without activity. Sign in again.")
        _sign_in_form()
    stamp = st.session_state.get("session_stamp")
    if stamp is None:  # set with the account id at sign-in: a session without one has ended (fail-safe)
        sign_out("Your session has ended; sign in again.")
        _sign_in_form()
    try:
        actor = services.get_store().accounts.actor(account_id, single_sign_on=bool(st.session_state.get("sso")),
                                                    stamp=stamp)
    except SignInFailed as err:  # disabled, deleted, or its password changed since this session began
        sign_out(_message(err))
        _sign_in_form()
    st.session_state["actor"] = actor
    st.session_state["last_active"] = now
    if actor.must_change_password:
        _change_password(actor)
    _idle_watch()
    return Mode.ACCOUNT, actor
