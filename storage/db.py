"""Database engine and migrations.

* SQLite file ``<data dir>/relief.db`` by default (embedded, nothing to install); PostgreSQL when
  ``RELIEF_DATABASE_URL`` (or ``url=``) is given, e.g. ``postgresql+psycopg://user@127.0.0.1:5432/relief``.
* SQLite connections get ``PRAGMA foreign_keys=ON`` (so ``ON DELETE CASCADE`` works), WAL journaling
  (readers do not block the writer) and a busy timeout; transactions begin explicitly so that every
  statement, DDL included, is inside one all-or-nothing transaction.
* The schema is owned by Alembic; :func:`upgrade` runs ``alembic upgrade head`` with a configuration built
  in code (no ``alembic.ini``, independent of the working directory).
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from .errors import StorageError

__all__ = [
    "DEFAULT_DATA_DIR", "resolve_data_dir", "resolve_url", "make_engine", "alembic_config", "upgrade",
    "MIGRATIONS_DIR",
]

DEFAULT_DATA_DIR = "./data"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir``, else ``$RELIEF_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("RELIEF_DATA_DIR") or DEFAULT_DATA_DIR)


def resolve_url(url: str | URL | None, data_dir: Path) -> URL:
    """``url``, else ``$RELIEF_DATABASE_URL``, else the SQLite file ``<data_dir>/relief.db``."""
    url = url or os.environ.get("RELIEF_DATABASE_URL")
    if url:
        return make_url(url)
    return URL.create("sqlite+pysqlite", database=str(Path(data_dir).resolve() / "relief.db"))


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` with the SQLite settings above applied to each connection."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        _private_file(url.database)
        engine = create_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        from .fields import clean_parameters

        clean_parameters(engine)
    return engine


def _private_file(database: str | None) -> None:
    """The SQLite file readable by its owner only (0600): it holds names, birth dates, notes and the audit log.

    A new file is created so before SQLite creates it (with the umask's 0644); SQLite gives its -wal and -shm
    files the database file's permissions. A file from before this rule (or copied in) that others may read is
    made private, with its -wal and -shm."""
    if database in (None, "", ":memory:") or str(database).startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        make_private(database, *(database + suffix for suffix in ("-wal", "-shm")))
    except OSError:  # (a folder that does not exist: SQLite says so in its own words)
        pass


def make_private(*paths) -> None:
    """Take away group and others' permissions from files or folders that have any (missing ones are skipped)."""
    for p in paths:
        try:
            mode = os.stat(p).st_mode
            if mode & 0o077:
                os.chmod(p, mode & 0o700)
        except OSError:  # missing, or not ours: left as it is
            continue


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see the SQLAlchemy
        # docs, "Serializable isolation / Savepoints / Transactional DDL" for pysqlite).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # A deleted patient's rows are overwritten with zeros, not left in free pages, and the write-ahead log
        # does not keep its size (with old pages) after a checkpoint (delete_patient runs one).
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA journal_size_limit=0")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")


def alembic_config(engine: Engine | None = None):
    """An :class:`alembic.config.Config` for Relief's migrations, built without any ini file.

    With ``engine`` the migration environment uses it (``config.attributes["engine"]``); command-line use
    is possible too: ``RELIEF_DATABASE_URL=... python -m storage upgrade|current|revision -m "..."``.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_path_separator", "os")
    if engine is not None:
        cfg.attributes["engine"] = engine
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (``alembic upgrade head``); a no-op when current."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _migrate(args) -> int:
    """``upgrade [rev]`` / ``downgrade [rev]`` / ``current`` / ``revision -m MSG [--autogenerate]`` (see
    :mod:`storage.cli`)."""
    from alembic import command

    data_dir = resolve_data_dir(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(resolve_url(None, data_dir))
    cfg = alembic_config(engine)
    try:
        if args.cmd == "upgrade":
            command.upgrade(cfg, args.rev or "head")
        elif args.cmd == "downgrade":
            if not getattr(args, "confirm", False):  # ("downgrade base" dropped every table at once)
                raise StorageError("a downgrade drops tables and columns with the patients' data in them — back up "
                                   "the data folder (or the database) first, then run it again with --confirm")
            command.downgrade(cfg, args.rev or "-1")
        elif args.cmd == "current":
            print(current_revision(engine))
        else:
            command.revision(cfg, message=args.message, autogenerate=args.autogenerate)
    finally:
        engine.dispose()
    return 0
