"""Speed benchmark: ``python -m analyzer.bench``.

Times ``measure`` and ``compare`` on a 12 MP photo and prints each as a ratio to OpenCV decoding the same JPEG in
the same process (so the figures travel between machines). Targets: measure ≤ 1×, compare ≤ 3× decode.
"""
from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from . import synth
from .comparison import compare
from .measurement import measure

__all__ = ["run_bench"]


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) if repeat < 3 else statistics.median(times)


def _photo_12mp(seed: int, capture: synth.Capture) -> bytes:
    skin = synth.make_skin(seed=seed, severity=0.6, size_mm=(70.0, 55.0), px_per_mm=30.0)
    rgb = synth.render(skin, capture, seed=seed)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return buf.tobytes()


def run_bench(*, repeat: int = 5) -> dict:
    """Return seconds and ratios for decode, measure and compare on 4000×3000 photos."""
    base = synth.Capture(field_mm=60.0, out_px=(4000, 3000), jpeg_quality=None)
    follow = synth.Capture(field_mm=58.0, out_px=(4000, 3000), jpeg_quality=None, rotation_deg=4.0,
                           center_mm=(36.0, 28.0), exposure=0.85)
    jpeg_a, jpeg_b = _photo_12mp(7, base), _photo_12mp(7, follow)
    arr = np.frombuffer(jpeg_a, np.uint8)

    def decode():
        return cv2.imdecode(arr, cv2.IMREAD_COLOR)

    img_a = cv2.cvtColor(decode(), cv2.COLOR_BGR2RGB)
    img_b = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg_b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    p = base.px_per_mm
    measure(img_a, px_per_mm=p)  # warm-up (imports, FFT plans)
    t_decode = _best(decode, repeat)
    t_measure = _best(lambda: measure(img_a, px_per_mm=p), repeat)
    t_compare = _best(lambda: compare(img_a, img_b, px_per_mm=p), max(3, repeat // 2))
    return {"megapixels": img_a.shape[0] * img_a.shape[1] / 1e6, "decode_s": t_decode,
            "measure_s": t_measure, "compare_s": t_compare,
            "measure_ratio": t_measure / t_decode, "compare_ratio": t_compare / t_decode}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    r = run_bench(repeat=ap.parse_args(argv).repeat)
    print(f"photo: {r['megapixels']:.1f} MP JPEG")
    print(f"cv2.imdecode : {1000 * r['decode_s']:7.1f} ms  (1.00x)")
    print(f"measure      : {1000 * r['measure_s']:7.1f} ms  ({r['measure_ratio']:.2f}x decode; target <= 1x)")
    print(f"compare      : {1000 * r['compare_s']:7.1f} ms  ({r['compare_ratio']:.2f}x decode; target <= 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
