"""Accuracy of Relief against its own ground truth: ``python -m analyzer.validate``.

Renders synthetic skin with known relief (:mod:`analyzer.synth`) under the drift of real visits and prints:

1. rank correlation (Spearman) of the roughness index with the true scar-band RMS slope across severities;
2. the change reported between recaptures of *unchanged* skin (its SD is the repeatability that sets the
   minimal detectable change, ``compare.REPEATABILITY_SD_PCT``), and how many were called significant;
3. detection of a scar field made 30 % shallower;
4. the change of the index under pigment-only edits (freckles, redness) and under each drift alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from scipy.stats import spearmanr

from . import synth
from .comparison import compare
from .measurement import measure

__all__ = ["run_validation"]


def _capture(rng, **kw):
    return synth.recapture(rng, **kw)


def severity_ranking(*, n: int = 8, seed: int = 100) -> dict:
    """Index vs true roughness across severities, each photo with independent recapture drift."""
    rng = np.random.default_rng(seed)
    sev = np.linspace(0.1, 1.0, n)
    truth, index = [], []
    for i, s in enumerate(sev):
        skin = synth.make_skin(seed=seed + i, severity=float(s))
        cap = _capture(rng)
        img = synth.render(skin, cap, seed=seed + i)
        truth.append(synth.true_roughness(skin, band="scar")["Sdq"])
        index.append(measure(img, px_per_mm=cap.px_per_mm).roughness_index)
    rho = float(spearmanr(truth, index).statistic)
    return {"severity": sev.tolist(), "true_Sdq": truth, "index": index, "spearman": rho}


def recapture_spread(*, n: int = 20, seed: int = 900, severity: float = 0.6) -> dict:
    """Compare two recaptures of the same, unchanged skin; n pairs."""
    rng = np.random.default_rng(seed)
    changes, sig = [], 0
    for i in range(n):
        skin = synth.make_skin(seed=seed + i, severity=severity)
        a, b = _capture(rng), _capture(rng)
        c = compare(synth.render(skin, a, seed=1), synth.render(skin, b, seed=2), px_per_mm=a.px_per_mm)
        changes.append(c.change_pct)
        sig += int(c.significant)
    ch = np.array(changes)
    return {"changes_pct": ch.tolist(), "sd_pct": float(ch.std(ddof=1)) if n > 1 else float("nan"),
            "max_abs_pct": float(np.abs(ch).max()), "significant": sig, "n": n}


def shallower_detection(*, n: int = 4, seed: int = 300, factor: float = 0.7, severity: float = 0.6) -> dict:
    """Baseline vs the same skin with scars ``factor`` times as deep, both recaptured."""
    rng = np.random.default_rng(seed)
    changes, sig, true = [], 0, []
    for i in range(n):
        skin = synth.make_skin(seed=seed + i, severity=severity)
        after = synth.scale_scars(skin, factor)
        a, b = _capture(rng), _capture(rng)
        c = compare(synth.render(skin, a, seed=1), synth.render(after, b, seed=2), px_per_mm=a.px_per_mm)
        t0 = synth.true_roughness(skin, band="scar")["Sdq"]
        t1 = synth.true_roughness(after, band="scar")["Sdq"]
        true.append(100 * (t1 / t0 - 1))
        changes.append(c.change_pct)
        sig += int(c.significant and c.change_pct < 0)
    return {"changes_pct": changes, "true_change_pct": true, "significant_improvement": sig, "n": n}


def pigment_invariance(*, seed: int = 400, severity: float = 0.6) -> dict:
    """Index change when only pigment changes (same capture, same relief)."""
    skin = synth.make_skin(seed=seed, severity=severity)
    cap = synth.Capture()
    base = measure(synth.render(skin, cap, seed=1), px_per_mm=cap.px_per_mm).roughness_index
    out = {}
    for name, edited in (("freckles", synth.add_freckles(skin, seed=seed, count=60, strength=1.5)),
                         ("redness", synth.add_redness(skin, strength=1.5, seed=seed))):
        v = measure(synth.render(edited, cap, seed=1), px_per_mm=cap.px_per_mm).roughness_index
        out[name] = 100 * (v / base - 1)
    return out


def drift_sensitivity(*, seed: int = 500, severity: float = 0.6) -> dict:
    """Index change under one kind of drift at a time (same skin, same framing)."""
    skin = synth.make_skin(seed=seed, severity=severity)
    cap = synth.Capture()
    base = measure(synth.render(skin, cap, seed=1), px_per_mm=cap.px_per_mm).roughness_index
    edits = {
        "exposure x0.6": dict(exposure=0.6),
        "exposure x1.5": dict(exposure=1.5),
        "white balance (1.15, 1, 0.85)": dict(white_balance=(1.15, 1.0, 0.85)),
        "light azimuth +30 deg": dict(light_azimuth_deg=cap.light_azimuth_deg + 30),
        "light azimuth +90 deg": dict(light_azimuth_deg=cap.light_azimuth_deg + 90),
        "light zenith +1 deg": dict(light_zenith_deg=cap.light_zenith_deg + 1),
        "light gradient 0.3": dict(light_gradient=0.3),
        "JPEG quality 75": dict(jpeg_quality=75),
        "blur 0.05 mm": dict(blur_mm=0.05),
        "noise x2": dict(noise=cap.noise * 2),
    }
    out = {}
    for name, kw in edits.items():
        v = measure(synth.render(skin, dataclasses.replace(cap, **kw), seed=1), px_per_mm=cap.px_per_mm)
        out[name] = 100 * (v.roughness_index / base - 1)
    return out


def capture_checks(*, seed: int = 600, severity: float = 0.6) -> dict:
    """Consistency verdicts: a faithful recapture, the light turned 30°, the camera 15 % closer; and the scale
    read from the calibration card laid on the skin (in-plane rotation; tilt is covered by tests/test_card.py)."""
    skin = synth.make_skin(seed=seed, severity=severity, size_mm=synth.SAMPLE_PATCH_MM)
    cap = synth.SAMPLE_CAPTURE
    base = synth.render(skin, cap, seed=1)
    faithful = synth.recapture(np.random.default_rng(seed), base=cap, light_azimuth_jitter_deg=5.0,
                               size_mm=synth.SAMPLE_PATCH_MM)
    cases = {
        "faithful recapture": faithful,
        "light turned 30 deg": dataclasses.replace(cap, light_azimuth_deg=cap.light_azimuth_deg + 30),
        "15 % closer": dataclasses.replace(cap, field_mm=cap.field_mm * 0.85, card_center_mm=(48.0, 34.0)),
    }
    out = {}
    for name, c in cases.items():
        k = compare(base, synth.render(skin, c, seed=2)).consistency
        out[name] = {"ok": k["ok"], "light_change_deg": k["light_change_deg"],
                     "scale_change_pct": k["scale_change_pct"], "advice": k["advice"]}
    m = measure(base)
    out["card scale error %"] = 100 * (m.px_per_mm / cap.px_per_mm - 1) if m.scale_source == "card" else float("nan")
    return out


def run_validation(*, quick: bool = False) -> dict:
    """All figures; ``quick`` uses fewer renders (for tests)."""
    t = time.perf_counter()
    res = {
        "severity_ranking": severity_ranking(n=6 if quick else 10),
        "recapture": recapture_spread(n=3 if quick else 20),
        "shallower_30pct": shallower_detection(n=2 if quick else 5),
        "pigment_only_pct": pigment_invariance(),
        "single_drift_pct": drift_sensitivity(),
        "capture_checks": capture_checks(),
    }
    res["seconds"] = time.perf_counter() - t
    return res


def _report(r: dict) -> None:
    s = r["severity_ranking"]
    print("Relief validation against synthetic ground truth (analyzer.synth)")
    print(f"1. Rank correlation of roughness index with true scar-band Sdq over {len(s['index'])} severities: "
          f"Spearman rho = {s['spearman']:.3f}   (target >= 0.95)")
    rc = r["recapture"]
    print(f"2. Recaptures of unchanged skin ({rc['n']} pairs): change SD = {rc['sd_pct']:.2f} %, "
          f"max |change| = {rc['max_abs_pct']:.2f} %, called significant: {rc['significant']}   "
          "(target <= 5 %, none significant)")
    print("   changes: " + ", ".join(f"{v:+.2f}" for v in rc["changes_pct"]))
    sh = r["shallower_30pct"]
    print(f"3. Scars 30 % shallower ({sh['n']} pairs): reported change "
          + ", ".join(f"{v:+.1f}" for v in sh["changes_pct"]) + " % (true Sdq change "
          + ", ".join(f"{v:+.1f}" for v in sh["true_change_pct"]) + f" %); significant improvement in "
          f"{sh['significant_improvement']}/{sh['n']}")
    print("4. Pigment-only edits (target |change| <= 5 %): "
          + ", ".join(f"{k} {v:+.2f} %" for k, v in r["pigment_only_pct"].items()))
    print("5. One drift at a time (index change):")
    for k, v in r["single_drift_pct"].items():
        print(f"   {k:32s} {v:+6.2f} %")
    print("6. Capture consistency (compare -> consistency) and the card's scale:")
    for name, v in r["capture_checks"].items():
        if isinstance(v, dict):
            print(f"   {name:22s} ok={v['ok']!s:5s} light change {v['light_change_deg']:+.0f} deg, field "
                  f"{v['scale_change_pct']:+.1f} %" + (f"; advice: {v['advice'][0]}" if v["advice"] else ""))
        else:
            print(f"   {name:22s} {v:+.2f} %")
    print(f"({r['seconds']:.0f} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.validate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer renders")
    args = ap.parse_args(argv)
    _report(run_validation(quick=args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
