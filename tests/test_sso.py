"""Single sign-on in a real browser against a real OpenID Connect provider on 127.0.0.1.

``oidc-provider-mock`` (PyPI) runs as a separate process: a complete OpenID provider (discovery document, JWKS,
authorization form, token and userinfo endpoints, RP-initiated logout) whose users are preset with
``--user-claims``. The dashboard runs as in test_browser.py, with Streamlit's ``[auth]`` section in a
secrets.toml in a temporary folder (``STREAMLIT_SECRETS_FILES``); chromium follows every redirect for real:
app → provider's sign-in form → ``/oauth2callback`` → app, and on sign-out app → provider's end-session page →
app. Nothing is downloaded; both servers listen on 127.0.0.1 only.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("oidc_provider_mock")
pytest.importorskip("authlib")

from test_browser import (  # noqa: E402,F401 - the chromium fixtures are used by pytest-playwright's `page`
    ADMIN_PASSWORD, SAMPLES, _free_port, assert_no_traceback, browser_context_args, browser_type_launch_args,
    key, main_text, page, settle, start_server)

from relief_app.demo import DEMO_NAME  # noqa: E402
from storage import Actor, open_store  # noqa: E402
from storage.accounts import SIGN_IN_FAILED  # noqa: E402

pytestmark = pytest.mark.browser

REFUSAL = SIGN_IN_FAILED[:1].upper() + SIGN_IN_FAILED[1:] + "."
# The provider's users (the mock's authorization form offers each preset "sub" as a button).
USERS = [
    {"sub": "dr-sso", "email": "Dr.Sso@Clinic.example", "email_verified": True},  # an account has it (other case)
    {"sub": "stranger", "email": "stranger@elsewhere.example", "email_verified": True},  # no account has it
]


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """``python -m oidc_provider_mock`` on a free 127.0.0.1 port; its base URL once discovery answers."""
    port = _free_port()
    log = tmp_path_factory.mktemp("idp") / "idp.log"
    cmd = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for user in USERS:
        cmd += ["--user-claims", json.dumps(user)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"oidc_provider_mock exited:\n{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/.well-known/openid-configuration", timeout=2) as r:
                    assert json.load(r)["issuer"] == url
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    """The dashboard with single sign-on pointing at ``idp``; account ``sso_prac`` (clinic MAIN) has the e-mail
    of the provider's user ``dr-sso``."""
    if not (SAMPLES / "week00_baseline.jpg").is_file():
        pytest.skip("sample_images/ missing — run `python -m analyzer.synth --samples sample_images`")
    root = tmp_path_factory.mktemp("sso")
    secrets = root / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'  # Streamlit fills in its port
        'cookie_secret = "test-cookie-secret-not-for-production-0123456789"\n'
        'client_id = "relief-test"\n'
        'client_secret = "relief-test-secret"\n'
        f'server_metadata_url = "{idp}/.well-known/openid-configuration"\n')
    data = root / "data"
    with open_store(data) as store:
        store.accounts.add(Actor.system(), "sso_prac", role="practitioner", password=None, clinic="MAIN",
                           email="dr.sso@clinic.example")
    srv = start_server(data, env={"STREAMLIT_SECRETS_FILES": str(secrets)})
    yield srv
    srv.stop()


def sso_round_trip(page, server, sub: str) -> None:
    """From a fresh browser session: the app's single sign-on button, then the provider's form as ``sub``."""
    page.goto(server.url + "/")
    page.locator(key("signin_sso") + " button").click()
    page.get_by_role("heading", name="Authorize Client").wait_for()  # the provider's own page
    assert not page.url.startswith(server.url)
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(server.url + "/**")
    page.get_by_role("heading", level=1).first.wait_for()
    settle(page)


def end_provider_session(page, server) -> None:
    """st.logout() sends the browser to the provider's end-session page; confirm it and land on the app."""
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(server.url + "/**")
    page.locator(key("signin_sso") + " button").wait_for()
    settle(page)


def sign_in_rows(server, account: str):
    with open_store(server.data_dir) as store:
        return [(e.outcome, e.detail) for e in store.audit.events(Actor.system(), action="sign_in", account=account)]


def test_single_sign_on_signs_in_the_account_with_that_email_and_signs_out_at_the_provider(page, server):
    page.goto(server.url + "/")
    page.get_by_label("Username", exact=True).wait_for()  # the local form stays next to the SSO button
    assert page.locator(key("signin_sso") + " button").inner_text().strip() == "Sign in with single sign-on"
    assert DEMO_NAME not in page.inner_text("body")

    sso_round_trip(page, server, "dr-sso")
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    assert DEMO_NAME in main_text(page)  # clinic MAIN's patient list
    assert "sso_prac" in page.inner_text('[data-testid="stSidebar"]')
    assert_no_traceback(page)
    assert sign_in_rows(server, "sso_prac") == [("ok", "single sign-on")]

    # A new browser tab of the same browser is signed in by Streamlit's identity cookie (one more audit row).
    page.goto(server.url + "/")
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)
    assert DEMO_NAME in main_text(page)

    page.locator(key("sign_out") + " button").click()
    page.get_by_role("heading", name="End Session").wait_for()  # st.logout(): the provider's end-session page
    end_provider_session(page, server)
    page.goto(server.url + "/")  # the identity cookie is gone: a new page load stays signed out
    page.locator(key("signin_sso") + " button").wait_for()
    settle(page)
    assert DEMO_NAME not in page.inner_text("body")
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    with open_store(server.data_dir) as store:
        outs = store.audit.events(Actor.system(), action="sign_out", account="sso_prac")
    assert len(outs) == 1 and sign_in_rows(server, "sso_prac") == [("ok", "single sign-on")] * 2


def test_an_email_without_an_account_is_refused_like_a_wrong_password(page, server):
    sso_round_trip(page, server, "stranger")
    page.get_by_text(REFUSAL).wait_for()
    body = page.inner_text("body")
    assert DEMO_NAME not in body and "Patients" not in body
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.locator(key("signin_sso") + " button").count() == 0  # instead: sign out of single sign-on
    assert_no_traceback(page)
    assert sign_in_rows(server, "stranger@elsewhere.example") == [
        ("failed", "single sign-on: no account with this e-mail")]

    # The local form still works in the same browser, and signing out clears the refused identity too.
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)
    assert DEMO_NAME in main_text(page)
    page.locator(key("sign_out") + " button").click()
    end_provider_session(page, server)
    assert page.locator(key("signin_sso_logout") + " button").count() == 0
    assert len(sign_in_rows(server, "stranger@elsewhere.example")) == 1
