"""Shared fixtures: synthetic skins (analyzer.synth, the ground truth) made, photographed and measured once per
test session, because renders (~0.3-1 s) and measurements (~0.1-0.3 s) are the expensive part of the tests.

Every fixture name starts with ``skin_`` so it cannot shadow a module's own fixtures. Cached photos are returned
read-only: a test that wants to edit one must copy it.
"""
from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from analyzer import synth


@pytest.fixture(scope="session")
def skin_small_capture() -> synth.Capture:
    """A cheaper photo than the default: 900 x 600 px of a 30 x 20 mm view (30 px/mm)."""
    return synth.Capture(out_px=(900, 600), field_mm=30.0)


@pytest.fixture(scope="session")
def skin_make():
    """``skin_make(seed=1, severity=0.6, *, depth=1.0, freckles=0, redness=0.0) -> synth.Skin``, cached.

    ``depth`` scales the scars (:func:`synth.scale_scars`); ``freckles`` adds that many melanin spots at
    strength 1.5 and ``redness`` haemoglobin of that strength (both seeded by ``seed``).
    """
    cache: dict = {}

    def make(seed: int = 1, severity: float = 0.6, *, depth: float = 1.0, freckles: int = 0,
             redness: float = 0.0) -> synth.Skin:
        key = (seed, severity, depth, freckles, redness)
        if key not in cache:
            if depth != 1.0 or freckles or redness:
                skin = make(seed, severity)
                if depth != 1.0:
                    skin = synth.scale_scars(skin, depth)
                if freckles:
                    skin = synth.add_freckles(skin, seed=seed, count=freckles, strength=1.5)
                if redness:
                    skin = synth.add_redness(skin, strength=redness, seed=seed)
            else:
                skin = synth.make_skin(seed=seed, severity=severity)
            cache[key] = skin
        return cache[key]

    return make


@pytest.fixture(scope="session")
def skin_photo():
    """``skin_photo(skin, capture=synth.Capture(), seed=1) -> uint8 (H, W, 3)``, cached and read-only."""
    cache: dict = {}

    def photo(skin: synth.Skin, capture: synth.Capture = synth.Capture(), seed: int = 1) -> np.ndarray:
        key = (id(skin), capture, seed)
        if key not in cache:
            img = synth.render(skin, capture, seed=seed)
            img.setflags(write=False)
            cache[key] = (skin, img)  # keep the skin alive so its id is not reused
        return cache[key][1]

    return photo


@pytest.fixture(scope="session")
def skin_measured(skin_photo):
    """``skin_measured(skin, capture=synth.Capture(), seed=1) -> Measurement`` at the capture's true scale, cached."""
    from analyzer import measure

    cache: dict = {}

    def measured(skin: synth.Skin, capture: synth.Capture = synth.Capture(), seed: int = 1):
        key = (id(skin), capture, seed)
        if key not in cache:
            cache[key] = (skin, measure(skin_photo(skin, capture, seed), px_per_mm=capture.px_per_mm))
        return cache[key][1]

    return measured


# ------------------------------------------------------------------------------------------ storage backends
PG_SKIP = "PostgreSQL not started — run via make test"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    """``(data_dir, url)``: url is None for SQLite (the default file), a fresh database for PostgreSQL."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield data_dir, None
        return
    base = os.environ.get("RELIEF_TEST_DATABASE_URL")
    if not base:
        pytest.skip(PG_SKIP)
    name = f"relief_test_{uuid.uuid4().hex[:12]}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield data_dir, make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()




@pytest.fixture
def store(backend):
    """A store on SQLite or (under `make test`) a fresh PostgreSQL database."""
    from storage import open_store

    data_dir, url = backend
    s = open_store(data_dir, url=url)
    yield s
    s.close()


@pytest.fixture
def cheap_hashes(monkeypatch):
    """Argon2id at small costs for tests that sign in many times (``pytest.mark.usefixtures("cheap_hashes")``)."""
    from helpers import cheap_password_hashes

    cheap_password_hashes(monkeypatch)
