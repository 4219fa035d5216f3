"""Batch analysis: measure every photo under some folders, or compare two folders pair by pair, into one CSV.

``python -m analyzer batch PATH... --out results.csv`` and ``python -m analyzer batch --compare BASELINE_DIR
FOLLOWUP_DIR --out changes.csv`` are thin wrappers around :func:`measure_folder` and :func:`compare_folders`.

The CSV is the run's journal as well as its result:

* one row per photo (per pair with ``--compare``); a file that cannot be measured becomes a row with its
  one-line ``error``, never a stop;
* each row is appended with a single ``write`` on an ``O_APPEND`` descriptor as soon as its photo is done, and
  every physical line is one row (messages are flattened to one line), so a killed run loses at most the rows in
  flight and a torn last line (power loss) is cut off before the next run appends;
* re-running with the same ``--out`` skips every file already in it with the same path, size and SHA-256
  (files whose error was not the file's fault — a crashed worker — are tried again), then rewrites the CSV
  sorted, one row per file (atomically: temporary file + rename).

Work is spread over processes of this machine (``jobs``) or an existing Dask distributed cluster
(``scheduler``); every photo is measured by the same :func:`analyzer.measure` call either way, so the numbers do
not depend on where they were computed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import multiprocessing
import os
import pkgutil
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import ImageError, OptionError, ReliefError
from .registry import ALGORITHM_VERSION, METRICS

__all__ = ["IMAGE_SUFFIXES", "MEASURE_COLUMNS", "COMPARE_COLUMNS", "BatchSummary", "find_photos", "pair_photos",
           "measure_row", "compare_row", "measure_folder", "compare_folders", "file_digest"]

#: File name endings searched for in folders (what :func:`analyzer.load_image` reads); files named explicitly
#: are tried whatever their name.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif")

_KEY_MEASURE = ("file", "size_bytes", "sha256")
#: Columns of ``batch`` (metric names from the registry, in its order; ``roughness_index`` is the first).
MEASURE_COLUMNS = (("file",) + tuple(METRICS)
                   + ("px_per_mm", "scale_source", "quality_ok", "warnings", "algorithm_version", "error",
                      "size_bytes", "sha256", "measured_at"))

_KEY_COMPARE = ("baseline", "baseline_size_bytes", "baseline_sha256",
                "followup", "followup_size_bytes", "followup_sha256")
#: Columns of ``batch --compare``: the change of the roughness index and its uncertainty (see
#: :class:`analyzer.Comparison`).
COMPARE_COLUMNS = ("name", "baseline", "followup", "change_pct", "ci95_low_pct", "ci95_high_pct", "mdc_pct",
                   "significant", "verdict", "baseline_roughness_index", "followup_roughness_index",
                   "px_per_mm", "scale_source", "alignment_ok", "warnings", "algorithm_version", "error",
                   "baseline_size_bytes", "baseline_sha256", "followup_size_bytes", "followup_sha256",
                   "measured_at")

#: Errors that are not the file's fault (a crashed worker, a bug): such rows are tried again on the next run.
_RETRY_PREFIXES = ("internal error", "worker ")


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: ``measured`` photos (or pairs) now, of which ``errors`` failed; ``skipped`` as already in
    the CSV; ``total`` rows in the CSV at the end."""

    measured: int
    skipped: int
    errors: int
    total: int
    out: Path


# ------------------------------------------------------------------------------------------------ finding files
def find_photos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Photos under ``paths``: folders are searched recursively for :data:`IMAGE_SUFFIXES`, files are taken as
    given. Absolute, without duplicates, sorted.

    Raises
    ------
    OptionError
        A path that does not exist.
    """
    found: set[Path] = set()
    for given in paths:
        p = Path(os.path.abspath(os.fspath(given)))
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                # (regular files only: reading a named pipe would wait for a writer for ever)
                found.update(Path(root) / f for f in files
                             if f.lower().endswith(IMAGE_SUFFIXES) and (Path(root) / f).is_file())
        elif p.exists():
            found.add(p)
        else:
            raise OptionError(f"{_one_line(given)} does not exist — check the path")
    return sorted(found)


def pair_photos(baseline_dir: str | os.PathLike, followup_dir: str | os.PathLike) \
        -> list[tuple[str, Path | None, Path | None]]:
    """Pair the photos of two folders by name: relative path without its ending (``p01/cheek.jpg`` pairs with
    ``p01/cheek.heic``). Returns ``(name, baseline or None, followup or None)`` sorted by name.

    Raises
    ------
    OptionError
        A path that is not a folder, or a name held twice in one folder (``a.jpg`` and ``a.png``).
    """
    sides = []
    for d in (baseline_dir, followup_dir):
        root = Path(os.path.abspath(os.fspath(d)))
        if not root.is_dir():
            raise OptionError(f"{_one_line(d)} is not a folder — --compare takes two folders of photos")
        by_name: dict[str, Path] = {}
        for f in find_photos([root]):
            name = f.relative_to(root).with_suffix("").as_posix()
            if name in by_name:
                raise OptionError(f"{_one_line(d)} holds two photos named {name!r} ({by_name[name].name} and "
                                  f"{f.name}) — keep one so the pairs are unambiguous")
            by_name[name] = f
        sides.append(by_name)
    base, follow = sides
    return [(n, base.get(n), follow.get(n)) for n in sorted(set(base) | set(follow))]


def file_digest(path: str | os.PathLike) -> tuple[int, str]:
    """``(size in bytes, SHA-256 hex)`` of a file, read in 1 MiB blocks.

    Raises
    ------
    ImageError
        ``path`` is not a regular file (a pipe named on the command line would block the read for ever).
    """
    if not Path(path).is_file():
        raise ImageError(f"{_one_line(path)} is not a regular file (a pipe, socket or device) — pass a saved photo "
                         "file")
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


# --------------------------------------------------------------------------------------- one task (in a worker)
def _one_line(obj) -> str:
    return " ".join(str(obj).split())


def _error_text(err: BaseException) -> str:
    if isinstance(err, ReliefError):
        return _one_line(err)
    if isinstance(err, MemoryError):
        return "internal error: out of memory — measure this photo alone or export a smaller copy"
    if isinstance(err, OSError):
        return _one_line(f"{err.strerror or err}: {err.filename}" if err.filename else err) \
            + " — check the path and permissions"
    return _one_line(f"internal error ({type(err).__name__}: {err}) — please report it with the photo")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _digest_into(row: dict, prefix: str, path: Path) -> None:
    row[f"{prefix}size_bytes"], row[f"{prefix}sha256"] = file_digest(path)


def measure_row(path: str | os.PathLike, *, px_per_mm: float | None = None) -> dict:
    """Measure one photo into a CSV row (dict keyed by :data:`MEASURE_COLUMNS`); never raises for a bad file.

    Parameters
    ----------
    path : str or PathLike
        The photo.
    px_per_mm : float, optional
        Pixels per millimetre of the file, as for :func:`analyzer.measure`.

    Returns
    -------
    dict
        Metric values are floats (NaN where not measurable); ``error`` is ``""`` or a one-line message.
    """
    from .measurement import measure

    row: dict = {"file": os.path.abspath(os.fspath(path)), "algorithm_version": ALGORITHM_VERSION, "error": ""}
    try:
        _digest_into(row, "", Path(row["file"]))
        m = measure(row["file"], px_per_mm=px_per_mm)
        row.update({name: float(m.metrics.get(name, math.nan)) for name in METRICS})
        row.update(px_per_mm=float(m.px_per_mm), scale_source=m.scale_source, quality_ok=bool(m.quality.ok),
                   warnings=" | ".join(_one_line(w) for w in m.warnings), algorithm_version=m.algorithm_version)
    except Exception as err:  # noqa: BLE001 — a bad file is a row, never a stop
        row["error"] = _error_text(err)
    row["measured_at"] = _now()
    return row


def compare_row(name: str, baseline: str | os.PathLike | None, followup: str | os.PathLike | None, *,
                px_per_mm: float | None = None) -> dict:
    """Compare one pair into a CSV row (dict keyed by :data:`COMPARE_COLUMNS`); never raises for a bad pair.

    Parameters
    ----------
    name : str
        The pair's name (relative path without ending).
    baseline, followup : str or PathLike or None
        The photos; ``None`` when the name is missing from that folder (the row then says so).
    px_per_mm : float, optional
        Scale of the baseline, as for :func:`analyzer.compare`.
    """
    from .comparison import compare

    row: dict = {"name": name, "algorithm_version": ALGORITHM_VERSION, "error": "",
                 "baseline": os.path.abspath(baseline) if baseline is not None else "",
                 "followup": os.path.abspath(followup) if followup is not None else ""}
    try:
        if baseline is None or followup is None:
            missing = "baseline" if baseline is None else "follow-up"
            raise OptionError(f"no {missing} photo named {name!r} — add it or ignore this row")
        _digest_into(row, "baseline_", Path(row["baseline"]))
        _digest_into(row, "followup_", Path(row["followup"]))
        c = compare(row["baseline"], row["followup"], px_per_mm=px_per_mm)
        lo, hi = c.ci95_pct
        warnings = list(c.consistency.get("advice", [])) if c.consistency else []
        warnings += [f"{which}: {w}" for which, m in (("baseline", c.baseline), ("follow-up", c.followup))
                     for w in m.warnings]
        row.update(change_pct=float(c.change_pct), ci95_low_pct=float(lo), ci95_high_pct=float(hi),
                   mdc_pct=float(c.mdc_pct), significant=bool(c.significant), verdict=c.direction,
                   baseline_roughness_index=float(c.baseline.roughness_index),
                   followup_roughness_index=float(c.followup.roughness_index),
                   px_per_mm=float(c.baseline.px_per_mm), scale_source=c.baseline.scale_source,
                   alignment_ok=bool(c.registration.ok), warnings=" | ".join(_one_line(w) for w in warnings),
                   algorithm_version=c.algorithm_version)
    except Exception as err:  # noqa: BLE001 — a bad pair is a row, never a stop
        row["error"] = _error_text(err)
    row["measured_at"] = _now()
    return row


# --------------------------------------------------------------------------------------------- the CSV journal
def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""  # repr round-trips exactly; empty reads back as NaN
    return _one_line(v) if isinstance(v, str) else str(v)


def _line(row: dict, columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(row.get(c)) for c in columns])
    # (surrogateescape: a file name that is not UTF-8 — a Latin-1 name from a Windows share or a zip — is written
    # with its own bytes and read back as the same name, so the run can finish and be resumed)
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _cut_torn_tail(out: Path) -> None:
    """Drop a last line without its newline (a write cut by power loss) so the next append starts a new row."""
    with open(out, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos = size
        while pos > 0:
            step = min(1 << 16, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                fh.truncate(pos - step + nl + 1)
                return
            pos -= step
        fh.truncate(0)


def _read_journal(out: Path, columns: Sequence[str]) -> list[dict]:
    if not out.exists() or out.stat().st_size == 0:
        return []
    _cut_torn_tail(out)
    with open(out, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != tuple(columns):
            raise OptionError(f"{_one_line(out)} is not a results file of this command and version (its columns "
                              "differ) — choose a new --out")
        return [dict(zip(columns, r)) for r in reader if len(r) == len(columns)]


def _append(fd: int, data: bytes) -> None:
    # One write on an O_APPEND descriptor: the row lands whole at the end (short writes only on a full disk).
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _rewrite(out: Path, rows: list[dict], columns: Sequence[str], sort_key: str) -> None:
    latest: dict[str, dict] = {}
    for r in rows:  # later rows supersede earlier ones of the same file (changed file, retried error)
        latest[r[sort_key]] = r
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_line(dict(zip(columns, columns)), columns))
            for key in sorted(latest):
                fh.write(_line(latest[key], columns))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- where the work runs
def _init_worker(threads: int, parent_pid: int) -> None:
    # N processes on N cores: one OpenCV thread each, or they fight over the cores.
    import cv2

    cv2.setNumThreads(threads)
    # A killed batch must not leave its workers waiting for work forever (their task queue never reports EOF).
    threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True, name="relief-parent-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed parent not yet reaped by its shell is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _exit_with(pid: int) -> None:
    while _alive(pid):
        time.sleep(1.0)
    os._exit(1)


def _run_local(fn: Callable, tasks: list[tuple], kwargs: dict, jobs: int):
    """Yield ``(task, row)`` as tasks finish, on ``jobs`` processes of this machine (``jobs=1``: this process)."""
    if jobs == 1:
        for t in tasks:
            yield t, fn(*t, **kwargs)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # forkserver: workers are forked from a clean single-threaded server that has imported the analyzer once
    # (plain fork from this process would copy OpenCV's and the executor's threads).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["analyzer.measurement", "analyzer.comparison"])
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(fn, *t, **kwargs): t for t in tasks}
        for fut in as_completed(futures):
            try:
                row = fut.result()
            except BrokenProcessPool:
                row = {"error": "worker process died (out of memory?) — run the same command again to retry"}
            yield futures[fut], row
    finally:
        # Interrupted: drop the queue (a plain `with` would measure every remaining photo before returning).
        pool.shutdown(wait=True, cancel_futures=True)


def _connect_dask(scheduler: str):
    """A client of the Dask distributed cluster at ``scheduler``, checked to run this Relief (:func:`_check_cluster`)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - listed dependency
        raise OptionError("--scheduler needs dask.distributed — pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except Exception as err:  # noqa: BLE001 — OSError, TimeoutError, ValueError for a malformed address ...
        raise OptionError(f"cannot reach the Dask scheduler at {_one_line(scheduler)} ({type(err).__name__}) — "
                          "check the address (tcp://HOST:PORT) and that `dask scheduler` is running") from None
    try:
        _check_cluster(client, scheduler)
    except BaseException:
        client.close()
        raise
    return client


def _run_dask(fn: Callable, tasks: list[tuple], kwargs: dict, client):
    """Yield ``(task, row)`` as tasks finish on the cluster of ``client`` (closed at the end)."""
    from distributed import as_completed

    try:
        futures = {}
        for t in tasks:
            # pure=False: a re-run must measure again, not fetch a result cached on the cluster
            futures[client.submit(fn, *t, **kwargs, pure=False)] = t
        for fut in as_completed(list(futures)):
            try:
                row = fut.result()
            except Exception as err:  # noqa: BLE001 — KilledWorker, lost connection ...
                row = {"error": _one_line(f"worker failed ({type(err).__name__}: {err}) — run the same command "
                                          "again to retry")}
            fut.release()
            yield futures[fut], row
    finally:
        client.close()


#: Imported on the scheduler and every worker before any photo is sent: they unpickle Relief's tasks, so each must
#: import this same ``analyzer`` (a worker without it fails every photo with an unpickling error).
_PROBE = "analyzer.registry:ALGORITHM_VERSION"


def _check_cluster(client, scheduler: str) -> None:
    """Refuse (one line) a cluster that cannot run Relief: no workers, or a scheduler or worker that cannot
    import ``analyzer`` or runs another algorithm version."""
    fix = ("start `dask scheduler` and `dask worker` in Relief's environment with PYTHONPATH set to Relief's folder "
           "(the same version on every machine)")
    try:
        where = "scheduler"
        on_scheduler = client.run_on_scheduler(pkgutil.resolve_name, _PROBE)
        where = "workers"
        on_workers = client.run(pkgutil.resolve_name, _PROBE)
    except Exception as err:  # noqa: BLE001 — ModuleNotFoundError, ImportError, a worker lost meanwhile ...
        raise OptionError(f"the Dask {where} at {_one_line(scheduler)} cannot import Relief "
                          f"({type(err).__name__}) — {fix}") from None
    if not on_workers:
        raise OptionError(f"no Dask workers are connected to {_one_line(scheduler)} — start `dask worker "
                          f"{_one_line(scheduler)}` on the machines that see the photos")
    versions = {"scheduler": on_scheduler, **on_workers}
    other = {who: v for who, v in versions.items() if v != ALGORITHM_VERSION}
    if other:
        who, v = next(iter(other.items()))
        raise OptionError(f"the Dask {'scheduler' if who == 'scheduler' else 'worker ' + _one_line(who)} runs Relief "
                          f"algorithm {_one_line(v)}, this is {ALGORITHM_VERSION} — {fix}")


# ------------------------------------------------------------------------------------------------------ engine
def _scheduler_address(scheduler: str) -> str:
    address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
    if not re.fullmatch(r"(tcp|tls)://[\w.\-\[\]:]+:\d+", address):
        raise OptionError(f"scheduler address {_one_line(scheduler)!r} is not tcp://HOST:PORT — copy it from the "
                          "`dask scheduler` log, e.g. tcp://10.0.0.5:8786")
    return address


def _check_scale(rows: list[dict], px_per_mm: float | None, out: Path) -> None:
    for r in rows:
        if r.get("error") or not r.get("scale_source"):
            continue
        given = r["scale_source"] == "given"
        same = (px_per_mm is None and not given) or (
            px_per_mm is not None and given and math.isclose(float(r["px_per_mm"]), px_per_mm, rel_tol=1e-6))
        if not same:
            was = f"--px-per-mm {float(r['px_per_mm']):g}" if given else "no --px-per-mm"
            raise OptionError(f"{_one_line(out)} was measured with {was} — give the same scale to resume, or "
                              "choose a new --out")


def _check_version(rows: list[dict], out: Path) -> None:
    for r in rows:
        if r.get("algorithm_version") and r["algorithm_version"] != ALGORITHM_VERSION:
            raise OptionError(f"{_one_line(out)} holds measurements of algorithm version {r['algorithm_version']} "
                              f"(this is {ALGORITHM_VERSION}) — choose a new --out to measure again")


def _run(tasks: list[tuple], fn: Callable, *, out, columns, key_columns, sort_key, task_key: Callable,
         kwargs: dict, jobs: int, scheduler: str | None, progress: bool | None) -> BatchSummary:
    out = Path(os.fspath(out))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"jobs must be a whole number of processes, at least 1, got {jobs!r}")
    if scheduler is not None:
        scheduler = _scheduler_address(scheduler)
    if out.is_dir():
        raise OptionError(f"{_one_line(out)} is a folder — give --out a file name such as results.csv")
    if not out.parent.is_dir():
        raise OptionError(f"folder {_one_line(out.parent)} does not exist — create it or choose another --out")
    existed = out.exists()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise OptionError(f"cannot write {_one_line(out)} ({err.strerror}) — check the folder's permissions") \
            from None
    try:
        _lock(fd, out)
        try:
            rows = _read_journal(out, columns)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise OptionError(f"cannot read {_one_line(out)} ({type(err).__name__}) — choose a new --out") from None
        _check_version(rows, out)
        _check_scale(rows, kwargs.get("px_per_mm"), out)
        # Before anything is written: a cluster that cannot run Relief is refused, not recorded as failed rows.
        client = _connect_dask(scheduler) if scheduler else None
    except BaseException:
        os.close(fd)
        if not existed:
            out.unlink(missing_ok=True)
        raise

    measured = errors = 0
    try:
        todo = _not_done(tasks, rows, key_columns=key_columns, task_key=task_key)
        if os.fstat(fd).st_size == 0:
            _append(fd, _line(dict(zip(columns, columns)), columns))
        if progress is None:
            progress = sys.stderr.isatty()
        from tqdm import tqdm

        runner = (_run_dask(fn, todo, kwargs, client) if client is not None
                  else _run_local(fn, todo, kwargs, min(jobs, max(1, len(todo)))))
        unit = "photo" if sort_key == "file" else "pair"
        with tqdm(total=len(todo), disable=not progress, unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
            for task, row in runner:
                if sort_key not in row:  # the worker died before making a row: name the task's files
                    row = {**_bare_row(task, sort_key), **row}
                row.setdefault("algorithm_version", ALGORITHM_VERSION)
                row.setdefault("measured_at", _now())
                _append(fd, _line(row, columns))
                rows.append({c: _cell(row.get(c)) for c in columns})
                measured += 1
                errors += bool(row.get("error"))
                bar.update(1)
        _rewrite(out, rows, columns, sort_key)  # still holding the lock
    finally:
        os.close(fd)
        if client is not None:
            client.close()  # (again, if the run stopped before the cluster's generator closed it)
    total = len({r[sort_key] for r in rows})
    return BatchSummary(measured=measured, skipped=len(tasks) - len(todo), errors=errors, total=total, out=out)


def _lock(fd: int, out: Path) -> None:
    """One run per CSV at a time: two would append the same photos and the last rewrite would drop rows."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise OptionError(f"another batch run is writing {_one_line(out)} — wait for it or choose another --out") \
            from None


def _not_done(tasks: list[tuple], rows: list[dict], *, key_columns, task_key: Callable) -> list[tuple]:
    """Tasks whose files (path, size, SHA-256) are not all in a row that needs no retry."""
    done = {tuple(r[k] for k in key_columns) for r in rows if not r["error"].startswith(_RETRY_PREFIXES)}
    known_sizes = {k[:2] for k in done} | {k[3:5] for k in done if len(k) > 3}
    todo = []
    for t in tasks:
        key: list[str] = []
        for p in task_key(t):  # (path or None, ...) in key order
            try:
                if p is None or (str(p), str(os.path.getsize(p))) not in known_sizes:
                    key = []  # missing, new or changed: no need to hash it here
                    break
                key += [str(p), *map(str, file_digest(p))]
            except (OSError, ImageError):
                key = []
                break
        if not key or tuple(key) not in done:
            todo.append(t)
    return todo


def _bare_row(task: tuple, sort_key: str) -> dict:
    if sort_key == "file":
        return {"file": os.path.abspath(task[0])}
    name, b, f = task
    return {"name": name, "baseline": os.path.abspath(b) if b else "", "followup": os.path.abspath(f) if f else ""}


def measure_folder(paths: Iterable[str | os.PathLike], *, out: str | os.PathLike, px_per_mm: float | None = None,
                   jobs: int = 1, scheduler: str | None = None, progress: bool | None = None) -> BatchSummary:
    """Measure every photo under ``paths`` into the CSV ``out`` (resuming it if it exists).

    Parameters
    ----------
    paths : iterable of str or PathLike
        Folders (searched recursively for :data:`IMAGE_SUFFIXES`) and photo files.
    out : str or PathLike
        The CSV, columns :data:`MEASURE_COLUMNS`. Photos already in it with the same path, size and SHA-256 are
        skipped.
    px_per_mm : float, optional
        Scale of every photo (file pixels); otherwise each photo's card, or the default, as in
        :func:`analyzer.measure`.
    jobs : int, default 1
        Processes on this machine.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://HOST:PORT``) to run on instead; its workers must
        see the photos at the same paths and have Relief installed.
    progress : bool, optional
        Show a progress bar on stderr; default: when stderr is a terminal.

    Returns
    -------
    BatchSummary

    Raises
    ------
    OptionError
        A path that does not exist, no photos found, an unusable ``out`` (a folder, unwritable, another
        command's or algorithm version's CSV, another scale, a CSV another run is writing), an unreachable
        scheduler.

    Examples
    --------
    >>> s = measure_folder(["sample_images"], out="results.csv", jobs=2)  # doctest: +SKIP
    >>> s.measured, s.errors, s.skipped  # doctest: +SKIP
    (5, 0, 0)
    """
    photos = find_photos(paths)
    if not photos:
        raise OptionError("no photos found (looked for " + ", ".join(IMAGE_SUFFIXES) + ") — check the folder")
    if px_per_mm is not None:
        from .measurement import _checked_scale

        px_per_mm = _checked_scale(px_per_mm)
    return _run([(p,) for p in photos], measure_row, out=out, columns=MEASURE_COLUMNS, key_columns=_KEY_MEASURE,
                sort_key="file", task_key=lambda t: (t[0],), kwargs={"px_per_mm": px_per_mm}, jobs=jobs,
                scheduler=scheduler, progress=progress)


def compare_folders(baseline_dir: str | os.PathLike, followup_dir: str | os.PathLike, *, out: str | os.PathLike,
                    px_per_mm: float | None = None, jobs: int = 1, scheduler: str | None = None,
                    progress: bool | None = None) -> BatchSummary:
    """Compare each follow-up photo with the baseline photo of the same name into the CSV ``out``.

    Parameters
    ----------
    baseline_dir, followup_dir : str or PathLike
        Folders paired by :func:`pair_photos`; a name found in only one folder becomes an error row.
    out : str or PathLike
        The CSV, columns :data:`COMPARE_COLUMNS` (resumed like :func:`measure_folder`'s).
    px_per_mm, jobs, scheduler, progress
        As for :func:`measure_folder`; ``px_per_mm`` is the baselines' scale.

    Returns
    -------
    BatchSummary
    """
    pairs = pair_photos(baseline_dir, followup_dir)
    if not pairs:
        raise OptionError("no photos found in either folder (looked for " + ", ".join(IMAGE_SUFFIXES)
                          + ") — check the folders")
    if px_per_mm is not None:
        from .measurement import _checked_scale

        px_per_mm = _checked_scale(px_per_mm)
    return _run(pairs, compare_row, out=out, columns=COMPARE_COLUMNS, key_columns=_KEY_COMPARE, sort_key="name",
                task_key=lambda t: (t[1], t[2]), kwargs={"px_per_mm": px_per_mm}, jobs=jobs, scheduler=scheduler,
                progress=progress)
