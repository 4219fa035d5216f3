"""Text that fits its column, checked in one place and alike on SQLite and PostgreSQL.

SQLite stores a 150-character region in a ``VARCHAR(100)`` and a NUL character anywhere; PostgreSQL refuses both
with a database error in the middle of a save. Every ORM write goes through :func:`guard_text`'s check before
anything is sent to the database, so both refuse the same input with the same one-line :class:`OptionError`;
callers that write files first (photos) call :func:`check_text` before them.
"""
from __future__ import annotations

from sqlalchemy import String, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .errors import OptionError

__all__ = ["check_text", "guard_text", "clean_parameters", "text_limit"]

#: How fields are named in messages (the column name otherwise, with spaces).
_LABELS = {"filename": "file name", "username": "user name", "code": "patient code", "email": "e-mail address",
           ("patients", "name"): "patient's name", ("clinics", "name"): "clinic's name",
           ("treatments", "procedure"): "treatment's procedure", ("treatments", "area"): "treated area",
           ("clinics", "code"): "clinic code"}


def _problem(table: str, key: str, value, column_type) -> str | None:
    if not isinstance(value, str) or not isinstance(column_type, String):
        return None
    label = _LABELS.get((table, key)) or _LABELS.get(key, key.replace("_", " "))
    if "\x00" in value:
        verb = "contain" if label.endswith("s") else "contains"
        return f"the {label} {verb} a NUL character (\\0), which cannot be stored — type it again"
    if column_type.length is not None and len(value) > column_type.length:
        return (f"the {label} is {len(value)} characters long, more than the {column_type.length} allowed — "
                "shorten it")
    return None


def text_limit(model, key: str) -> int | None:
    """Characters ``model.key`` holds (None: unlimited) — for forms that show the limit while typing."""
    column_type = inspect(model).columns[key].type
    return column_type.length if isinstance(column_type, String) else None


def check_text(model, **values) -> None:
    """Refuse values that do not fit ``model``'s text columns (NUL anywhere, or longer than the column).

    Raises
    ------
    OptionError
        Naming the field and the fix.
    """
    mapper = inspect(model)
    columns = mapper.columns
    for key, value in values.items():
        problem = _problem(mapper.local_table.name, key, value, columns[key].type) if key in columns else None
        if problem:
            raise OptionError(problem)


def _before_flush(session, _flush_context, _instances) -> None:
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        for attr in state.mapper.column_attrs:
            problem = _problem(state.mapper.local_table.name, attr.key, getattr(obj, attr.key, None),
                               attr.columns[0].type)
            if problem:
                raise OptionError(problem)


def guard_text(sessions: sessionmaker) -> None:
    """Check every ORM write of the sessions ``sessions`` makes (before the flush sends it)."""
    event.listen(sessions, "before_flush", _before_flush)


def _clean(value):
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    return value


def clean_parameters(engine: Engine) -> None:
    """PostgreSQL refuses any statement whose parameters hold a NUL character, even a search: such a lookup
    (a user name typed at sign-in, a patient search) must find nothing rather than fail. Writes never get here
    with a NUL (:func:`guard_text` refuses them first)."""

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _before(conn, cursor, statement, parameters, context, executemany):
        return statement, _clean(parameters)
