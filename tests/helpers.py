"""Small helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""
from __future__ import annotations

import contextlib
import datetime as dt

from storage import Actor

#: The server acting in clinic MAIN (created by migration 0002 with id 1): all rights there, none elsewhere.
MAIN = Actor.system(1, "MAIN")


def new_patient(store, name, *, actor: Actor = MAIN, consent: bool = True, **fields):
    """``store.create_patient`` plus the clinical-photography consent that must precede any photo."""
    p = store.create_patient(actor, name, **fields)
    if consent:
        store.consents.record(actor, p.id, "clinical", granted=True, date=dt.date(2020, 1, 1))
    return p


def seeded_demo_dir(tmp_path_factory, name: str):
    """A new data folder with the demo patient seeded as the app's first start does (photos measured for real);
    skips when sample_images/ is missing."""
    import pytest

    from relief_app import demo
    from storage import open_store

    if not all((demo.SAMPLES_DIR / n).is_file() for n, _, _ in demo.COURSE):
        pytest.skip("sample_images/ missing — run `python -m analyzer.synth --samples sample_images`")
    data = tmp_path_factory.mktemp(name) / "data"
    with open_store(data) as store:
        assert demo.seed_demo(store) is not None
    return data


def signed_in(at, account_id: int, *, last_active: float | None = None):
    """Make an AppTest session look as after the sign-in form for ``account_id``: its id, its password's stamp
    (without which the app ends the session) and the time of last activity. The data folder is the app's
    (``RELIEF_DATA_DIR``)."""
    import os
    import time

    from storage import open_store

    with open_store(os.environ["RELIEF_DATA_DIR"]) as s:
        s.accounts.ensure_first_admin(os.environ.get("RELIEF_ADMIN_PASSWORD") or None)  # as the app's first start
        stamp = s.accounts.actor(account_id).credential_stamp
    at.session_state["account_id"] = account_id
    at.session_state["session_stamp"] = stamp
    at.session_state["last_active"] = time.time() if last_active is None else last_active
    return at



def another_photo(jpeg: bytes, k: int) -> bytes:
    """The same photo as another shot: one pixel changed by ``k`` code values, re-encoded (storage refuses the
    very same photo at a second visit of a patient)."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    img[0, 0] = (img[0, 0].astype(int) + k) % 256
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def figure_captions(at) -> list[str]:
    """The captions (as shown, plain text) of the pictures a page shows in-page (relief_app.images.figure)."""
    import html
    import re

    bodies = [e.value for e in at.get("html")]
    return [html.unescape(c) for b in bodies if 'class="relief-picture"' in b
            for c in re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", b, re.S)]


def media_images(at) -> list:
    """Pictures a page shows through st.image (served from /media/<hash>, reachable without sign-in): none."""
    return list(at.image if hasattr(at, "image") else at.get("imgs"))


def small_png(seed: int) -> bytes:
    """A 30 x 20 px PNG of seeded noise: a photo file whose bytes differ by seed."""
    import io

    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def cheap_password_hashes(monkeypatch) -> None:
    """Argon2id with small costs, so the many sign-ins of a test take milliseconds (the production costs are
    argon2-cffi's defaults: 64 MiB, 3 passes; the hash is Argon2id either way)."""
    from argon2 import PasswordHasher

    from storage import accounts as accounts_mod

    monkeypatch.setattr(accounts_mod, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def app_texts(script, actor, *, timeout: float = 60, **state) -> list:
    """Run a Streamlit script function (AppTest) acting as ``actor`` (``session_state["as_actor"]``) with the other
    ``state`` in its session; the texts it wrote. Any exception in the script fails the test."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(script, default_timeout=timeout)
    at.session_state["as_actor"] = actor
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [t.value for t in at.text]


@contextlib.contextmanager
def local_time_zone(name: str):
    """The process's local time zone set to ``name`` (``TZ`` + ``time.tzset``), restored afterwards."""
    import os
    import time

    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
