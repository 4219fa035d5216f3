"""Errors raised by the storage service.

They subclass :class:`analyzer.errors.ReliefError`, so entry points show ``str(err)`` (one sentence that
says the fix) and never a traceback.
"""
from __future__ import annotations

from analyzer.errors import OptionError, ReliefError

__all__ = ["StorageError", "NotFound", "Conflict", "OptionError", "AccessDenied", "SignInFailed", "ConsentRequired"]


class StorageError(ReliefError):
    """The database or the photo store cannot do what was asked (corrupt file, unreachable server, ...)."""


class NotFound(StorageError, LookupError):
    """No such record *for this patient*.

    Raised both when the id does not exist and when it belongs to another patient, so the error never
    reveals whether another patient's record exists.
    """


class Conflict(StorageError):
    """The change would break a uniqueness rule (e.g. two patients with the same code)."""


class AccessDenied(StorageError, PermissionError):
    """The acting account's role may not do this (e.g. a viewer uploading). Raised only for records the
    account may see: a record of another clinic is :class:`NotFound`, never ``AccessDenied``."""


class SignInFailed(StorageError):
    """Wrong user name or password, a disabled or a locked account: one message for all, so it never tells
    whether a user name exists."""


class ConsentRequired(StorageError):
    """A photo cannot be saved before the patient's consent to clinical photography is recorded."""
