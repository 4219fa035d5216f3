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
