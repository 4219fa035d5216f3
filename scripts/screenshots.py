"""Regenerate the README's screenshots in docs/screenshots/ (patients, new visit, progress, compare, visit mode).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Runs the browser test that takes them — tests/test_browser.py::test_fresh_data_folder_shows_the_demo_patient_on_
every_page: a fresh dashboard on an empty data folder (demo patient seeded from sample_images/), Debian's
chromium at 1400×1000, full-page shots, each checked to show the real page. Needs /usr/bin/chromium.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/test_browser.py::test_fresh_data_folder_shows_the_demo_patient_on_every_page"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"),
                        help="folder for the PNG files (default: docs/screenshots)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not Path("/usr/bin/chromium").exists():
        print("error: /usr/bin/chromium is missing — install it with `make system-deps`", file=sys.stderr)
        return 2
    env = {**os.environ, "RELIEF_SCREENSHOT_DIR": str(out)}
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", TEST],
                         cwd=REPO, env=env)
    if rc == 0:
        for name in ("patients", "new_visit", "progress", "compare", "visit_mode"):
            print(out / f"{name}.png")
    else:
        print("error: the screenshot test failed; the files in", out, "may be incomplete", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
