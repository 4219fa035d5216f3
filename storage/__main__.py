"""``python -m storage``: accounts, the audit log and migrations (see :mod:`storage.cli`)."""
from .cli import main

raise SystemExit(main())
