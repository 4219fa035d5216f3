"""Small helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""
from __future__ import annotations

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
