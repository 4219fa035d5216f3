"""Time the Progress page for a patient with 50 visits (the issue asks for < 1 s after the first load).

Seeds a fresh data folder with one patient, 50 visits two weeks apart (small generated photos, precomputed
measurements and comparisons, treatments every 6 weeks), then renders the Progress page with Streamlit's
AppTest: the first load (imports, store, caches) and then repeated reruns as a practitioner switching pages or
metrics would cause. Prints the figures.

    .venv/bin/python scripts/bench_app.py [--visits 50] [--runs 5]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _photo(rng: np.random.Generator, size: int = 240) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(60, 200, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def seed(data_dir: Path, n_visits: int, *, seed: int = 0) -> int:
    """One patient with ``n_visits`` visits of the left cheek; returns the patient id."""
    import analyzer
    from storage import NewMeasurement, NewPhoto, open_store

    rng = np.random.default_rng(seed)
    version = analyzer.ALGORITHM_VERSION
    names = [m for m in analyzer.METRICS]
    with open_store(data_dir) as store:
        p = new_patient(store, "Bench patient", code="BENCH")
        start = dt.date(2024, 1, 1)
        base_ri = 7.0
        photo_ids = []
        for i in range(n_visits):
            ri = base_ri * (1.0 - 0.35 * (1 - np.exp(-i / 8))) * (1 + rng.normal(0, 0.02))
            metrics = {n: float(rng.uniform(0.5, 5.0)) for n in names}
            metrics["roughness_index"] = float(ri)
            treated = i % 3 == 0
            v = store.save_visit(MAIN, 
                p.id, date=start + dt.timedelta(weeks=2 * i), notes=f"visit {i + 1}",
                photos=[NewPhoto(_photo(rng), f"visit{i:02d}.jpg", "left cheek", measurement=NewMeasurement(
                    version, roughness_index=float(ri), metrics=metrics, px_per_mm=20.0, scale_source="given",
                    quality={"ok": True, "warnings": [], "codes": [], "values": {}}))],
                treatment={"needle_depth_mm": 1.5, "area": "cheeks"} if treated else None,
            )
            photo_ids.append(v.photos[0].id)
            if i:
                change = 100.0 * (ri / base_ri - 1.0)
                store.save_comparison(MAIN, p.id, photo_ids[0], v.photos[0].id, version, change_pct=change,
                                      ci_low=change - 5.0, ci_high=change + 5.0, mdc_pct=4.5,
                                      significant=abs(change) > 5.0)
        return p.id


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="relief-bench-")) / "data"
    os.environ["RELIEF_DATA_DIR"] = str(data_dir)
    os.environ["RELIEF_DEMO"] = "0"
    os.environ.pop("RELIEF_DATABASE_URL", None)
    t = time.perf_counter()
    pid = seed(data_dir, args.visits)
    print(f"seeded {args.visits} visits in {time.perf_counter() - t:.2f} s ({data_dir})")

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["patient_id"] = pid
    t = time.perf_counter()
    at.run()
    at.switch_page("views/progress.py").run()
    first = time.perf_counter() - t
    if at.exception:
        print("the page raised:", [e.value for e in at.exception])
        return 1
    n_points = len(at.get("plotly_chart"))
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    at.selectbox(key="progress_metric").set_value("scar_density").run()
    metric_switch = time.perf_counter() - t
    ok = max(times) < 1.0 and metric_switch < 1.0
    print(f"progress page, {args.visits} visits: first load {first:.2f} s; after it: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.runs} reruns; "
          f"switching the metric {metric_switch * 1000:.0f} ms; charts drawn: {n_points}")
    print("PASS: < 1 s after the first load" if ok else "FAIL: 1 s or more after the first load")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
