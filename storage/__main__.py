"""Maintenance CLI: ``python -m storage upgrade|downgrade [rev]|current|revision -m MSG [--autogenerate]``.

Uses ``RELIEF_DATABASE_URL`` / ``RELIEF_DATA_DIR`` like the app (``--data-dir`` overrides the latter).
"""
from .db import _main

raise SystemExit(_main())
