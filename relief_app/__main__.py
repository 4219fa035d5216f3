"""Command line of the dashboard's data: ``python -m relief_app report|export|update-results``.

::

    python -m relief_app report --patient CODE --out report.pdf [--region NAME] [--paper A4|Letter] [--clinic CODE]
    python -m relief_app export --out DIR [--patient CODE] [--deidentify] [--clinic CODE]
    python -m relief_app update-results [--patient CODE] [--clinic CODE]

``update-results`` computes and stores every measurement and comparison that has no result for the installed
algorithm version (after an upgrade: ``analyzer.ALGORITHM_VERSION``), as opening each patient's Progress page
would, so the Patients list and a viewer's pages show the new numbers at once. Photos that cannot be measured or
aligned are listed, one line each, and the rest goes on.

Both read ``RELIEF_DATA_DIR`` / ``RELIEF_DATABASE_URL`` like the app (and, like the app's first start, seed the
demo patient into a new data folder unless ``RELIEF_DEMO=0``). ``RELIEF_CLINIC_NAME`` sets the report's header.
Whoever runs them has the server's files, so they act as the server within one clinic (``--clinic``, default
``MAIN``): patients of other clinics are not found. Each report and export is recorded in the audit log. A
de-identified export contains only patients whose consent to teaching and marketing use is in force and whose
consent to clinical photography is not withdrawn.
Errors are one line on stderr and exit code 2 — never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analyzer.cli import EXIT_ERROR, guarded
from analyzer.errors import OptionError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(EXIT_ERROR, f"error: {message} (see: python -m relief_app --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m relief_app",
                description="Relief: progress reports, data exports and results after an upgrade.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("report", help="write a patient's progress report as PDF")
    r.add_argument("--patient", required=True, metavar="CODE", help="the patient's code, e.g. DEMO")
    r.add_argument("--out", required=True, help="PDF file to write")
    r.add_argument("--region", default=None, metavar="NAME", help="one region only (default: all)")
    r.add_argument("--paper", default="A4", choices=("A4", "Letter"), help="paper size (default A4)")
    r.add_argument("--clinic", default="MAIN", metavar="CODE", help="the patient's clinic (default MAIN)")
    e = sub.add_parser("export", help="write measurements, comparisons and treatments as CSV and XLSX")
    e.add_argument("--out", required=True, metavar="DIR", help="folder to write the files into")
    e.add_argument("--patient", default=None, metavar="CODE", help="one patient only (default: all)")
    e.add_argument("--deidentify", action="store_true",
                   help="drop names and notes, pseudonymise codes, dates as days since the first visit; only "
                        "patients with consent to teaching/marketing use who have not withdrawn consent to clinical "
                        "photography")
    e.add_argument("--clinic", default="MAIN", metavar="CODE", help="the clinic to export (default MAIN)")
    u = sub.add_parser("update-results", help="compute the results missing for this version of the analysis "
                                              "(after an upgrade)")
    u.add_argument("--patient", default=None, metavar="CODE", help="one patient only (default: all)")
    u.add_argument("--clinic", default="MAIN", metavar="CODE", help="the clinic (default MAIN)")
    return p


def _open():
    from storage import open_store

    from . import demo

    store = open_store(os.environ.get("RELIEF_DATA_DIR") or None, os.environ.get("RELIEF_DATABASE_URL") or None)
    if demo.demo_enabled():
        demo.seed_demo(store)  # as the app's first start does; nothing happens in a folder that has data
    return store


def _check_writable_file(path: Path) -> None:
    if path.is_dir():
        raise OSError(21, "is a folder, not a file", str(path))
    if not path.parent.is_dir():
        raise OSError(2, "folder does not exist", str(path.parent))


def _report(args) -> str:
    from . import report, reportdata
    from .export import private_file

    out = Path(args.out)
    _check_writable_file(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with private_file(tmp) as f:  # fails now, before the work, when the folder is not writable; owner-only
            with _open() as store:
                actor = store.accounts.clinic_actor(args.clinic)
                patient = reportdata.find_patient(store, actor, args.patient)
                data = reportdata.gather_report(store, actor, patient.id, region=args.region,
                                                clinic=os.environ.get("RELIEF_CLINIC_NAME", ""))
                store.audit.log(actor, "report", patient_id=patient.id, detail=f"command line, {args.paper}")
            pdf = report.render_pdf(data, paper=args.paper)
            f.write(pdf)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return f"wrote {out} ({len(pdf) // 1024} KB, {len(data.regions)} region(s))"


def _export(args) -> str:
    from . import export, reportdata

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OSError(20, "is a file, not a folder", str(out))
    with _open() as store:
        actor = store.accounts.clinic_actor(args.clinic)
        pid = reportdata.find_patient(store, actor, args.patient).id if args.patient is not None else None
        data = reportdata.gather_export(store, actor, patient_id=pid, teaching=args.deidentify)
        if args.deidentify and not data.patients:  # an empty study file that looks like success helps nobody
            who = (f"patient {args.patient} has not" if args.patient is not None else "no patient of this clinic has")
            raise OptionError(f"{who} consented to teaching and marketing use (or has withdrawn consent to clinical "
                              "photography), so a de-identified export would be empty — see the consent on the "
                              "Patients page")
        key = export.pseudonym_key(store.data_dir) if args.deidentify else None
        detail = f"command line, {len(data.patients)} patient(s)" + (", de-identified" if key else "")
        reportdata.log_export(store, actor, data, patient_id=pid, detail=detail)
    files = export.write_export(data, out, deidentify=args.deidentify, key=key)
    what = "de-identified " if args.deidentify else ""
    return f"wrote {what}export of {len(data.patients)} patient(s) to {out}: {', '.join(f.name for f in files)}"


def _update_results(args) -> str:
    import analyzer

    from . import reportdata, visits

    version = analyzer.ALGORITHM_VERSION
    updated, current, problems = 0, 0, []
    with _open() as store:
        actor = store.accounts.clinic_actor(args.clinic)
        patients = [reportdata.find_patient(store, actor, args.patient)] if args.patient is not None \
            else store.list_patients(actor)
        for patient in patients:
            for region in store.regions(actor, patient.id):
                points = store.progress(actor, patient.id, region, algorithm_version=version)
                if not visits.lacking_results(points):
                    current += 1
                    continue
                _, failed = visits.complete_results(store, actor, patient.id, points)
                updated += 1
                problems += [f"{patient.code or patient.id}, {region}, {line}" for line in failed]
    for line in problems:
        print(f"could not update: {line}", file=sys.stderr)
    return (f"algorithm {version}: results computed for {updated} region(s), {current} already up to date, "
            f"{len(patients)} patient(s)" + (f"; {len(problems)} photo(s) could not be measured or aligned (above)"
                                             if problems else ""))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    def run() -> int:
        command = {"report": _report, "export": _export, "update-results": _update_results}[args.command]
        print(command(args))
        return 0

    return guarded(run, writes=True)


if __name__ == "__main__":
    sys.exit(main())
