"""Command line of the storage: accounts, the audit log and migrations, on the same data as the app.

::

    python -m storage users add NAME --role admin|practitioner|viewer --clinic CODE --password-stdin [--new-clinic]
    python -m storage users add NAME --role ... --clinic CODE --email ADDRESS --sso-only   (no password)
    python -m storage users list
    python -m storage users disable NAME          (enable NAME to undo)
    python -m storage users reset NAME --password-stdin [--revoke-links]
    python -m storage users sso-only NAME [--revoke-links]   (delete the password: single sign-on only; reset to undo)
    python -m storage audit [--since YYYY-MM-DD] [--clinic CODE] [--json]
    python -m storage upgrade|downgrade [REV]|current|revision -m MSG [--autogenerate]

Reads ``RELIEF_DATA_DIR`` / ``RELIEF_DATABASE_URL`` like the app (``--data-dir`` overrides the first). Whoever
runs it has the server's files, so it acts as the server itself (``Actor.system``); every change is audited as
``system``. Errors are one line on stderr with exit status 2. Passwords are read from standard input only (never
from the command line, where other users of the machine could see them in the process list).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from analyzer.errors import ReliefError

from .access import ROLES, Actor
from .errors import NotFound

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _password(args) -> str:
    if not args.password_stdin:
        raise ReliefError("give the password on standard input with --password-stdin "
                          "(e.g. printf '%s' \"$PW\" | python -m storage users add ...)")
    try:  # (bytes, decoded here: under a C locale Python would let a Latin-1 password through as surrogates)
        pw = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ReliefError("the password on standard input is not UTF-8 text; type or pipe it from a UTF-8 "
                          "terminal or file") from None
    if not pw:
        raise ReliefError("no password on standard input; pipe one in")
    return pw


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m storage", description="Relief storage: accounts, audit log, migrations.")
    p.add_argument("--data-dir", default=None, help="data folder (default $RELIEF_DATA_DIR or ./data)")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    users = sub.add_parser("users", help="manage accounts")
    us = users.add_subparsers(dest="action", required=True, parser_class=_Parser)
    add = us.add_parser("add")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--clinic", required=True, help="clinic code (MAIN exists from the start)")
    add.add_argument("--new-clinic", action="store_true",
                     help="create the clinic --clinic names (without it an unknown code is refused: a typo would make "
                          "an account that sees none of its clinic's patients)")
    add.add_argument("--email", default=None)
    add.add_argument("--password-stdin", action="store_true")
    add.add_argument("--sso-only", action="store_true", help="no password: signs in only through single sign-on")
    us.add_parser("list")
    sso = us.add_parser("sso-only", help="delete the account's password: single sign-on only")
    sso.add_argument("name")
    for name in ("disable", "enable"):
        us.add_parser(name).add_argument("name")
    reset = us.add_parser("reset")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true")
    for cmd in (sso, reset):  # (disabling always revokes them)
        cmd.add_argument("--revoke-links", action="store_true",
                       help="also revoke the patient links the account issued (the old password may have been stolen)")
    au = sub.add_parser("audit", help="print the audit log, newest first")
    au.add_argument("--since", default=None, help="YYYY-MM-DD")
    au.add_argument("--clinic", default=None, help="only this clinic")
    au.add_argument("--json", action="store_true", help="one JSON object per line")
    au.add_argument("--limit", type=int, default=100000)
    for name in ("upgrade", "downgrade", "current", "revision"):
        m = sub.add_parser(name)
        m.add_argument("rev", nargs="?", default=None)
        m.add_argument("-m", "--message", default="")
        m.add_argument("--autogenerate", action="store_true")
        if name == "downgrade":
            m.add_argument("--confirm", action="store_true",
                           help="yes: drop the tables and columns newer than REV, with the data in them")
    args = p.parse_args(argv)
    try:
        if args.cmd in ("upgrade", "downgrade", "current", "revision"):
            from .db import _migrate

            return _migrate(args)
        return _run(args)
    except ReliefError as err:
        print(f"python -m storage: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as err:  # (a file where a folder should be, a disk that is full, ...)
        where = f" ({err.filename})" if err.filename else ""
        print(f"python -m storage: error: {' '.join((err.strerror or str(err) or type(err).__name__).split())}"
              f"{where}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from .service import open_store

    store = open_store(args.data_dir)
    try:
        system = Actor.system()
        if args.cmd == "users":
            if args.action == "add":
                if args.sso_only and args.password_stdin:
                    raise ReliefError("--sso-only creates the account without a password; leave out --password-stdin")
                if not args.new_clinic:
                    try:
                        store.accounts.clinic_actor(args.clinic)
                    except NotFound:
                        raise NotFound(f"no clinic {args.clinic.strip().upper()}; check the code, or add --new-clinic "
                                       "to create it") from None
                rec = store.accounts.add(system, args.name, role=args.role,
                                         password=None if args.sso_only else _password(args),
                                         clinic=args.clinic, email=args.email)
                print(f"created {rec.username} ({rec.role}) in clinic {rec.clinic_code}")
            elif args.action == "list":
                print(f"{'user':<24} {'role':<13} {'clinic':<10} {'state':<9} {'sign-in':<9} last sign-in")
                for a in store.accounts.list(system):
                    state = "disabled" if a.disabled else ("locked" if a.locked_until and a.locked_until >
                                                           dt.datetime.now(dt.timezone.utc) else "active")
                    how = "sso-only" if not a.has_password else ("both" if a.email else "password")
                    last = a.last_sign_in.strftime("%Y-%m-%d %H:%M") if a.last_sign_in else "never"
                    print(f"{a.username:<24} {a.role:<13} {a.clinic_code:<10} {state:<9} {how:<9} {last}")
            elif args.action in ("disable", "enable"):
                rec = store.accounts.set_disabled(system, args.name, args.action == "disable")
                print(f"{rec.username}: {'disabled' if rec.disabled else 'enabled'}")
            elif args.action in ("sso-only", "reset"):
                n = store.accounts.open_links(system, args.name) if args.revoke_links else 0
                revoked = f"; {n} patient link(s) it issued revoked" if args.revoke_links else ""
                if args.action == "sso-only":
                    rec = store.accounts.remove_password(system, args.name, revoke_links=args.revoke_links)
                    print(f"{rec.username}: single sign-on only (password deleted){revoked}")
                else:
                    rec = store.accounts.reset_password(system, args.name, _password(args), must_change=False,
                                                        revoke_links=args.revoke_links)
                    print(f"{rec.username}: password reset{revoked}")
            return 0
        # audit
        since = None
        if args.since:
            try:
                since = dt.date.fromisoformat(args.since)
            except ValueError:
                raise ReliefError(f"--since {args.since!r} is not a date; use YYYY-MM-DD") from None
        actor = store.accounts.clinic_actor(args.clinic) if args.clinic else system
        events = store.audit.events(actor, since=since, limit=args.limit)
        for e in events:
            if args.json:
                print(json.dumps({"id": e.id, "at": e.at.isoformat(), "account": e.account, "clinic_id": e.clinic_id,
                                  "action": e.action, "patient_id": e.patient_id, "outcome": e.outcome,
                                  "detail": e.detail}, ensure_ascii=False))
            else:
                print(f"{e.at:%Y-%m-%d %H:%M:%S} {e.account[:24]:<24} {e.action:<16} "
                      f"{'' if e.patient_id is None else e.patient_id!s:<6} {e.outcome:<7} {e.detail}")
        return 0
    finally:
        store.close()
