"""Command line: ``python -m analyzer measure|compare|batch|card``.

Errors are one line on stderr and exit code 2 — never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings

from .errors import ReliefError
from .registry import METRICS

EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention too)
        self.exit(EXIT_ERROR, f"error: {message} (see: python -m analyzer --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m analyzer", description="Relief: skin relief from photos.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    m = sub.add_parser("measure", help="measure one photo")
    m.add_argument("photo")
    m.add_argument("--px-per-mm", type=float, default=None, help="pixels per millimetre of the photo")
    m.add_argument("--roi", default=None, help="region X,Y,W,H in pixels")
    m.add_argument("--face", action="store_true",
                   help="full-face photo: also measure the standard face regions (cheeks, forehead, chin, temples)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    c = sub.add_parser("compare", help="compare a follow-up with its baseline")
    c.add_argument("baseline")
    c.add_argument("followup")
    c.add_argument("--px-per-mm", type=float, default=None, help="pixels per millimetre of the baseline")
    c.add_argument("--face", action="store_true",
                   help="full-face photos: compare the standard face regions only (cheeks, forehead, chin, temples)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    b = sub.add_parser("batch", help="measure every photo under folders (or compare two folders) into a CSV",
                       description="Measure every photo under PATH... (recursively) into one CSV row each, or with "
                                   "--compare pair two folders' photos by name; re-running with the same --out "
                                   "resumes.")
    b.add_argument("paths", nargs="*", metavar="PATH", help="folders or photo files")
    b.add_argument("--compare", nargs=2, metavar=("BASELINE_DIR", "FOLLOWUP_DIR"), default=None,
                   help="compare each follow-up photo with the baseline photo of the same name")
    b.add_argument("--out", required=True, help="CSV to write (resumed if it exists)")
    b.add_argument("--jobs", type=int, default=None, help="processes on this machine (default 1)")
    b.add_argument("--px-per-mm", type=float, default=None, help="pixels per millimetre of every photo")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask distributed scheduler to run on, e.g. tcp://10.0.0.5:8786")
    k = sub.add_parser("card", help="write the printable calibration card")
    k.add_argument("--out", default="relief-card.pdf", help="output PDF (print at 100 %%)")
    return p


def _fmt(value, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.3g} {unit}".strip()


def _print_measure(m) -> None:
    d = m.to_dict()
    print(f"Roughness index: {_fmt(m.roughness_index, '%')}  (lower = smoother; "
          f"scale {m.px_per_mm:.1f} px/mm from {m.scale_source})")
    print("Quality: " + ("OK" if m.quality.ok else "NOT OK — retake advised"))
    for w in m.warnings:
        print(f"  ! {w}")
    print("Metrics:")
    for name, spec in METRICS.items():
        print(f"  {name:24s} {_fmt(d['metrics'].get(name), spec.unit):>14s}  {spec.meaning.split(';')[0]}")
    for name, vals in m.regions.items():
        print(f"  {name:14s} roughness {_fmt(vals['roughness_index'], '%')}, {_fmt(vals['area_cm2'], 'cm²')} measured")
    if m.scars:
        kinds = {}
        for s in m.scars:
            kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
        print("Scars by size: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def _print_compare(c) -> None:
    lo, hi = c.ci95_pct
    if not math.isfinite(c.change_pct):
        print("Change of roughness: could not be measured (too little common skin in the two photos)")
    else:
        print(f"Change of roughness: {c.change_pct:+.1f} %  (95 % interval {lo:+.1f} to {hi:+.1f} %; "
              f"minimal detectable change {c.mdc_pct:.1f} %)")
    print(f"Verdict: {c.direction}" + (" (beyond measurement noise)" if c.significant else ""))
    r = c.registration
    print(f"Alignment: {'OK' if r.ok else 'FAILED'} ({r.inliers} matches, scale {r.scale:.3f}, "
          f"rotation {r.rotation_deg:+.1f}°)")
    for w in c.consistency.get("advice", []) if c.consistency else []:
        print(f"  ! {w}")
    for which, m in (("baseline", c.baseline), ("follow-up", c.followup)):
        for w in m.warnings:
            print(f"  ! {which}: {w}")
    for name, rc in c.region_changes.items():
        print(f"  {name:14s} {_fmt(rc['change_pct'], '%')}" + ("  (beyond noise)" if rc["significant"] else ""))
    gone = sum(1 for s in c.scar_changes if s["status"] == "vanished")
    shallower = sum(1 for s in c.scar_changes if s["status"] == "shallower")
    if c.scar_changes:
        print(f"Scars: {shallower} shallower, {gone} no longer detected, of "
              f"{sum(1 for s in c.scar_changes if s['baseline_id'] is not None)} at baseline")


def _batch(args) -> int:
    from .batch import compare_folders, measure_folder
    from .errors import OptionError

    if bool(args.paths) == bool(args.compare):
        raise OptionError("give either folders/photos to measure or --compare BASELINE_DIR FOLLOWUP_DIR")
    if args.jobs is not None and args.scheduler:
        raise OptionError("give --jobs or --scheduler, not both (the cluster decides how many workers run)")
    opts = dict(out=args.out, px_per_mm=args.px_per_mm, jobs=1 if args.jobs is None else args.jobs,
                scheduler=args.scheduler)
    s = compare_folders(*args.compare, **opts) if args.compare else measure_folder(args.paths, **opts)
    what = "pairs" if args.compare else "photos"
    print(f"{s.measured} {what} measured ({s.errors} with errors), {s.skipped} already in {s.out}; "
          f"{s.total} rows")
    return 0


def _run(args) -> int:
    if args.command == "measure":
        from .measurement import measure
        m = measure(args.photo, px_per_mm=args.px_per_mm, roi=args.roi, regions="face" if args.face else None)
        print(json.dumps(m.to_dict())) if args.json else _print_measure(m)
    elif args.command == "compare":
        from .comparison import compare
        c = compare(args.baseline, args.followup, px_per_mm=args.px_per_mm,
                    regions="face" if args.face else None)
        print(json.dumps(c.to_dict())) if args.json else _print_compare(c)
    elif args.command == "batch":
        return _batch(args)
    elif args.command == "card":
        from .card import write_card_pdf
        write_card_pdf(args.out)
        print(f"wrote {args.out} — print it at 100 % (no 'fit to page') and check the ruler")
    return 0


def guarded(run, *, writes: bool = False, report_with: str = "") -> int:
    """Run one command-line command; any failure becomes one line on stderr and ``EXIT_ERROR``, never a traceback.

    Shared by ``python -m analyzer`` and ``python -m relief_app``. ``run()`` returns the exit code. ``writes``: the
    command's files are outputs, so an ``OSError`` says "cannot write". ``report_with`` ends the internal-error line
    (what to attach to a bug report).
    """
    try:
        # What the libraries say on the side (Pillow's notes on a file's odd metadata, numpy's floating-point
        # warnings) is not for the user: the command's own warnings are part of its output, errors are one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("PIL").setLevel(logging.CRITICAL)
            return run()
    except ReliefError as err:
        print(f"error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
    except BrokenPipeError:  # the reader (e.g. `| head`) closed the pipe: not an error of the command
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except MemoryError:
        print("error: the photo needs more memory than is available — export a smaller copy", file=sys.stderr)
    except OSError as err:
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        reason = err.strerror or err
        print(f"error: cannot write{where} ({reason})" if writes else f"error: {reason}{where}",
              "— check the path and permissions", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 — last resort: never a traceback to a user
        one_line = " ".join(str(err).split())
        print(f"error: internal error ({type(err).__name__}: {one_line}) — please report it{report_with}",
              file=sys.stderr)
    return EXIT_ERROR


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return guarded(lambda: _run(args), report_with=" with the photo")
