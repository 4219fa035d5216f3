"""Accuracy of Relief against its own ground truth: ``python -m analyzer.validate``.

Renders synthetic skin with known relief (:mod:`analyzer.synth`) under the drift of real visits and prints:

1. rank correlation (Spearman) of the roughness index with the true scar-band RMS slope across severities;
2. the change reported between recaptures of *unchanged* skin, and how many were called significant (these pairs
   are held apart from the calibration of ``comparison.REPEATABILITY_SD_PCT``: they check it);
3. detection of a scar field made 30 % shallower;
4. the change of the index under pigment-only edits (freckles, redness) and under each drift alone (printed as 4.
   and 5.), and the capture-consistency verdicts (6.);
7. colour inside the scars: red or brown pits whose colour fades while the pits stay, and pits filling with and
   without their colour;
8. the repeatability calibration behind ``significant``, on recaptures rendered with a second noise model
   (:func:`calibration_pairs`), and the false-significance rate on unchanged pairs held apart from it.

and, on real photos (``tests/data/real/``, or any folder with ``--real-dir``), checks that need no ground truth
(:mod:`analyzer.perturb`):

9. recapture invariance: the photo under a visit's drift (exposure, white balance, light gradient, rotation,
   zoom, framing, JPEG) stays within the MDC and is not called significant;
10. colour invariance: freckles, age spots or redness added in the pigment domain move the index by <= 5 %;
11. monotonicity: blurring the photo, or blending it toward its smoothed copy, lowers the index;
12. phone processing of the same capture (sharpening, local contrast, CLAHE, saturation, noise reduction,
    vignetting, sensor noise): what it does to the index (:func:`real_processing`);
13. quality-warning rates and, for sub-folders named after scar types, the agreement of the dominant scar class
    per photo with the folder's label.
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import inspect
import json
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from . import colour, perturb, synth
from .comparison import REPEATABILITY_SD_PCT, calibrate_repeatability, compare
from .errors import OptionError, ReliefError
from .loading import read_image
from .measurement import DEFAULT_FIELD_MM, jpeg_warnings, measure

__all__ = ["run_validation", "drift_budget", "DRIFTS", "contrast_on_card", "phone_tone", "stray_light", "scar_colour",
           "calibration_pairs", "held_out_spread", "held_out_with_card", "repeatability_calibration",
           "real_photos", "real_recapture", "real_pigment", "REAL_PIGMENT_SEEDS", "real_monotonicity", "real_survey",
           "real_processing", "REAL_PROCESSING",
           "REAL_DIR"]


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


def scar_colour(*, n: int = 4, seed: int = 700, severity: float = 0.6, strength: float = 1.0,
                shallower: bool = True) -> dict:
    """Colour inside the scars (``synth.add_scar_pigment``): it must not read as relief.

    For each of ``n`` skins and each colour (``red``: haemoglobin, ``brown``: melanin, at ``strength``):

    * ``fade_pct``: index change when the colour fades away while the pits stay, same capture (pure colour
      effect; target ``|change| <= 3 %``);
    * ``fade_recapture_pct`` / ``fade_significant``: the same as a :func:`compare` of two recaptures (never
      significant);
    * ``shallower_plain_pct`` / ``shallower_coloured_pct``: pits 30 % shallower, compared on the same two
      recaptures without and with the colour (which stays); ``shallower_gap_pts`` their difference (target
      ``<= 3`` points). ``shallower=False`` leaves these out (the fading only).
    """
    rng = np.random.default_rng(seed)
    cap = synth.Capture()
    kinds = {"red": dict(redness=strength), "brown": dict(brown=strength)}
    out = {"fade_pct": {k: [] for k in kinds}, "fade_recapture_pct": {k: [] for k in kinds},
           "shallower_coloured_pct": {k: [] for k in kinds}, "shallower_gap_pts": {k: [] for k in kinds},
           "shallower_plain_pct": [], "fade_significant": 0, "n": n, "strength": strength}
    for i in range(n):
        skin = synth.make_skin(seed=seed + i, severity=severity)
        a, b = _capture(rng), _capture(rng)
        if shallower:
            plain = compare(synth.render(skin, a, seed=1), synth.render(synth.scale_scars(skin, 0.7), b, seed=2),
                            px_per_mm=a.px_per_mm).change_pct
            out["shallower_plain_pct"].append(plain)
        for name, kw in kinds.items():
            coloured = synth.add_scar_pigment(skin, **kw)
            faded = synth.fade_scar_pigment(coloured, 0.0)
            r0, r1 = (measure(synth.render(s, cap, seed=1), px_per_mm=cap.px_per_mm).roughness_index
                      for s in (coloured, faded))
            out["fade_pct"][name].append(100 * (r1 / r0 - 1))
            c = compare(synth.render(coloured, a, seed=1), synth.render(faded, b, seed=2), px_per_mm=a.px_per_mm)
            out["fade_recapture_pct"][name].append(c.change_pct)
            out["fade_significant"] += int(c.significant)
            if not shallower:
                continue
            sc = compare(synth.render(coloured, a, seed=1),
                         synth.render(synth.scale_scars(coloured, 0.7), b, seed=2), px_per_mm=a.px_per_mm).change_pct
            out["shallower_coloured_pct"][name].append(sc)
            out["shallower_gap_pts"][name].append(sc - plain)
    return out


#: The parts of a phone's processing (:func:`_phone_processing`).
PHONE_PARTS = ("tone", "sharpen", "chroma", "jpeg2")


def _phone_processing(rgb: np.ndarray, rng, parts=PHONE_PARTS) -> np.ndarray:
    """A phone's own processing, which the validation renders do not have: a tone curve, sharpening, blotchy
    chroma noise and a second JPEG (messaging apps re-encode); ``parts`` chooses which (the random draws are the
    same whichever are applied)."""
    import cv2

    x = rgb.astype(np.float32) / 255.0
    p = rng.uniform(0.97, 1.03)                                         # adaptive tone curve (same phone)
    if "tone" in parts:
        x = x ** np.float32(p)
    amount, radius = rng.uniform(0.0, 0.4), rng.uniform(0.7, 1.5)    # unsharp mask
    if "sharpen" in parts:
        x = x + np.float32(amount) * (x - cv2.GaussianBlur(x, (0, 0), radius))
    ycc = cv2.cvtColor(np.clip(x, 0, 1), cv2.COLOR_RGB2YCrCb)
    chroma_noise = rng.standard_normal(ycc.shape[:2] + (2,)).astype(np.float32)
    chroma_noise = cv2.GaussianBlur(chroma_noise, (0, 0), 1.5) * np.float32(rng.uniform(0.5, 1.5) * 3 / 255)
    if "chroma" in parts:
        ycc[..., 1:] += chroma_noise                                      # demosaicing leaves correlated chroma noise
    x = np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), 0, 1)
    u8 = np.rint(x * 255).astype(np.uint8)
    quality = int(rng.integers(75, 93))
    if "jpeg2" not in parts:
        return u8
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


#: The second model's drift between visits (synth.recapture keywords) ...
_SECOND_MODEL_DRIFT = dict(exposure_range=(0.6, 1.6), white_balance_range=(0.8, 1.2), noise_range=(0.002, 0.015),
                           blur_mm_range=(0.005, 0.035), max_light_gradient=0.2, jpeg_quality_range=(75, 95))
#: ... and, for one drift at a time (:func:`drift_budget`), what each is held at otherwise.
_NO_DRIFT = dict(exposure_range=(1.0, 1.0), white_balance_range=(1.0, 1.0), noise_range=(0.006, 0.006),
                 blur_mm_range=(0.02, 0.02), max_light_gradient=0.0, jpeg_quality_range=(90, 90),
                 light_azimuth_jitter_deg=0.0, light_zenith_jitter_deg=0.0, shift_mm=0.0, rotation_jitter_deg=0.0,
                 zoom_jitter=0.0)
#: Each drift of the second model: the synth.recapture keywords it sets (its value there, or recapture's default),
#: or the part of the phone's processing.
DRIFTS = {"exposure": ("exposure_range",), "white balance": ("white_balance_range",), "noise": ("noise_range",),
          "blur": ("blur_mm_range",), "light gradient": ("max_light_gradient",), "JPEG": ("jpeg_quality_range",),
          "light azimuth ±20°": ("light_azimuth_jitter_deg",), "lamp height ±0.5°": ("light_zenith_jitter_deg",),
          "framing": ("shift_mm", "rotation_jitter_deg", "zoom_jitter"), "tone curve": "tone",
          "sharpening": "sharpen", "chroma noise": "chroma", "second JPEG": "jpeg2"}


#: A capture with the calibration card beside the scars (80 × 60 mm at 15 px/mm), for :func:`contrast_on_card` and
#: the second model's pairs with the card (:func:`calibration_pairs`), on a skin of CARD_SKIN_MM.
CARD_CAPTURE = synth.Capture(field_mm=80.0, out_px=(1200, 900), card_center_mm=(52.0, 40.0), center_mm=(45.0, 35.0))
CARD_SKIN_MM = (90.0, 70.0)
#: What the second model takes over from CARD_CAPTURE when the card is in its pairs.
_CARD_FIELD = {name: getattr(CARD_CAPTURE, name) for name in ("field_mm", "out_px", "card_center_mm", "center_mm")}


def calibration_pairs(*, n: int = 30, seed: int = 5000, drift: str | None = None, card: bool = False):
    """Recaptures of unchanged skin rendered with a second noise model, for the repeatability calibration.

    They differ from the validation renders (:func:`recapture_spread`) on purpose: other skins (seeds from
    ``seed``, severity 0.3-0.9), a lamp set up differently for each patient (azimuth 100-170°, zenith 40-50°,
    ambient 0.12-0.28, vignetting up to 0.3, faint glare), wider drift between visits (exposure ×0.6-1.6, white
    balance ±20 %, noise 0.002-0.015, blur 0.005-0.035 mm, light gradient up to 0.2, JPEG 75-95) and a phone's
    processing on top (:func:`_phone_processing`: tone-curve exponent 0.97-1.03, sharpening, chroma noise, a
    second JPEG). The tone curve matters most: the index reads log-contrast, so an exponent ×1.03 on the encoded
    values reads ≈ +3 %, like a lamp 1° higher.

    ``drift`` (a key of :data:`DRIFTS`, or ``"none"``): only that drift, the others held (:func:`drift_budget`);
    None: all of them.

    ``card``: the calibration card lies beside the scars in both photos (an 80 mm field at 15 px/mm, as
    :data:`CARD_CAPTURE`). Same seeds, but not the same pairs: the phone's chroma noise draws one number per pixel,
    so from the second pair on every draw differs from those without the card (which stay as they were).

    Yields
    ------
    (baseline, followup, px_per_mm)
        uint8 RGB photos and the baseline's scale: what :func:`analyzer.comparison.calibrate_repeatability` takes.
    """
    if drift is None:
        kw, parts = dict(_SECOND_MODEL_DRIFT), PHONE_PARTS
    elif drift == "none" or drift in DRIFTS:
        one = DRIFTS.get(drift, ())
        kw = dict(_NO_DRIFT)
        defaults = {k: v.default for k, v in inspect.signature(synth.recapture).parameters.items()}
        kw.update({k: _SECOND_MODEL_DRIFT.get(k, defaults[k]) for k in (one if isinstance(one, tuple) else ())})
        parts = (one,) if isinstance(one, str) else ()
    else:
        raise OptionError(f"drift {drift!r} is not one of the second model's: {', '.join(DRIFTS)} (or 'none')")
    rng = np.random.default_rng(seed)
    for i in range(n):
        skin = synth.make_skin(seed=seed + i, severity=float(rng.uniform(0.3, 0.9)),
                               **({"size_mm": CARD_SKIN_MM} if card else {}))
        base = synth.Capture(ambient=float(rng.uniform(0.12, 0.28)), vignetting=float(rng.uniform(0.0, 0.3)),
                             specular=float(rng.uniform(0.0, 0.02)), light_azimuth_deg=float(rng.uniform(100, 170)),
                             light_zenith_deg=float(rng.uniform(40, 50)), **(_CARD_FIELD if card else {}))
        more = {"size_mm": CARD_SKIN_MM} if card else {}
        a, b = synth.recapture(rng, base=base, **kw, **more), synth.recapture(rng, base=base, **kw, **more)
        pa = _phone_processing(synth.render(skin, a, seed=seed + 2 * i), rng, parts)
        pb = _phone_processing(synth.render(skin, b, seed=seed + 2 * i + 1), rng, parts)
        yield pa, pb, a.px_per_mm


def drift_budget(*, n: int = 20, seed: int = 8000, drifts=None) -> dict:
    """The held-out pairs' spread taken apart: for each drift of the second model alone (and ``"none"``: two
    renders of one capture), the RMS change of ``n`` unchanged pairs, in %. Squares add up to about the spread of
    all drifts together (:func:`held_out_spread`); the largest terms are what keeps unchanged pairs from ±3 %."""
    out = {}
    for d in (["none", *DRIFTS] if drifts is None else drifts):
        r = calibrate_repeatability(calibration_pairs(n=n, seed=seed, drift=d))  # (unaligned pairs left out)
        out[d] = {"rms_pct": r["sd_pct"], "max_abs_pct": r["max_abs_pct"], "within_3": r["within_3_pct"],
                  "n": r["n"]}
    return out


def repeatability_calibration(*, n: int = 30, seed: int = 5000) -> dict:
    """:func:`analyzer.comparison.calibrate_repeatability` on :func:`calibration_pairs`; the figures behind
    ``REPEATABILITY_SD_PCT`` (which should equal ``upper_pct`` of the full run, rounded up)."""
    return {**calibrate_repeatability(calibration_pairs(n=n, seed=seed)), "constant_pct": REPEATABILITY_SD_PCT}


def held_out_spread(*, n: int = 60, seed: int = 8000) -> dict:
    """Unchanged pairs of the second noise model with seeds the calibration never saw: false-significance rate."""
    r = calibrate_repeatability(calibration_pairs(n=n, seed=seed))
    return {**r, "false_significance": r["significant"] / r["n"]}


def held_out_with_card(*, n: int = 30, seed: int = 8000, drift: str | None = None) -> dict:
    """Pairs of the second noise model with the calibration card in both photos (:func:`held_out_spread`'s seeds,
    which the calibration never saw; other draws than its card-less pairs), compared with and without the card's contrast correction (``compare(correct_contrast=...)``):
    the index changes, how many stay within ±3 %, how many are called significant, and the corrections read.
    ``drift``: as :func:`calibration_pairs` (one drift of the second model alone, e.g. ``"tone curve"``)."""
    out = {"changes_pct": [], "uncorrected_pct": [], "correction_pct": [], "significant": 0,
           "significant_uncorrected": 0, "unaligned": 0}
    for base, follow, _ in calibration_pairs(n=n, seed=seed, drift=drift, card=True):
        try:
            c = compare(base, follow)
            u = compare(base, follow, correct_contrast=False)
        except RegistrationError:
            out["unaligned"] += 1
            continue
        out["changes_pct"].append(c.change_pct)
        out["uncorrected_pct"].append(u.change_pct)
        out["correction_pct"].append(c.consistency["contrast_correction_pct"])
        out["significant"] += int(c.significant)
        out["significant_uncorrected"] += int(u.significant)
    for key, name in (("changes_pct", "within_3"), ("uncorrected_pct", "within_3_uncorrected")):
        v = np.abs(np.asarray(out[key], float))
        out[name] = float(np.mean(v <= 3.0)) if v.size else float("nan")
        out[name.replace("within_3", "rms")] = float(np.sqrt(np.mean(v ** 2))) if v.size else float("nan")
    out["n"] = len(out["changes_pct"])
    return out


def capture_checks(*, seed: int = 600, severity: float = 0.6) -> dict:
    """Consistency verdicts: a faithful recapture, the light turned 30°, the camera 12 % closer (measured at its
    own scale: no advice) and 30 % closer (advice); and the scale read from the calibration card laid on the skin
    (in-plane rotation; tilt is covered by tests/test_card.py)."""
    skin = synth.make_skin(seed=seed, severity=severity, size_mm=synth.SAMPLE_PATCH_MM)
    cap = synth.SAMPLE_CAPTURE
    base = synth.render(skin, cap, seed=1)
    faithful = synth.recapture(np.random.default_rng(seed), base=cap, light_azimuth_jitter_deg=5.0,
                               size_mm=synth.SAMPLE_PATCH_MM)
    cases = {
        "faithful recapture": faithful,
        "light turned 30 deg": dataclasses.replace(cap, light_azimuth_deg=cap.light_azimuth_deg + 30),
        "12 % closer": dataclasses.replace(cap, field_mm=cap.field_mm * 0.89, card_center_mm=(50.0, 35.0)),
        "30 % closer": dataclasses.replace(cap, field_mm=cap.field_mm * 0.77, card_center_mm=(44.0, 31.0)),
    }
    out = {}
    for name, c in cases.items():
        k = compare(base, synth.render(skin, c, seed=2)).consistency
        out[name] = {"ok": k["ok"], "light_change_deg": k["light_change_deg"],
                     "scale_change_pct": k["scale_change_pct"], "advice": k["advice"]}
    m = measure(base)
    out["card scale error %"] = 100 * (m.px_per_mm / cap.px_per_mm - 1) if m.scale_source == "card" else float("nan")
    return out






def phone_tone(rgb: np.ndarray, p: float) -> np.ndarray:
    """A phone's tone curve ``v ** p`` on the encoded values (p > 1: more contrast in log light), as uint8."""
    return np.rint(255.0 * (np.asarray(rgb, np.float32) / np.float32(255.0)) ** np.float32(p)).astype(np.uint8)


def stray_light(rgb: np.ndarray, veil: float) -> np.ndarray:
    """A veil of stray light (flare, haze on the lens): ``veil`` × the photo's brightest linear value added to every
    pixel's linear light, as uint8."""
    lin = colour.linearise(np.asarray(rgb, np.float32) / np.float32(255.0))
    lin += np.float32(veil) * lin.max()
    return np.rint(255.0 * colour.encode_srgb(np.clip(lin, 0.0, 1.0))).astype(np.uint8)


#: Local processing put through :func:`contrast_on_card` (the card's grey steps read a tone curve, not a local gain).
CARD_PROCESSING = (("local contrast 3 mm", 0.1), ("local contrast 3 mm", 0.2), ("sharpen 0.1 mm", 1.0), ("CLAHE", 1.5))


def contrast_on_card(*, n: int = 4, seed: int = 900, tones=(0.96, 1.0, 1.04, 1.07), veils=(0.01, 0.02),
                     processing=CARD_PROCESSING) -> dict:
    """Unchanged skin, recaptured with the card and put through a phone's tone curve ``v ** p`` (keys: p), a veil
    of stray light (keys: ``"veil 0.01"``, ...) or local processing (:data:`CARD_PROCESSING`, keys as
    ``"CLAHE 1.5"``): the index change (which comes from that alone), the contrast change the card's grey steps read
    (``consistency["tone_change_pct"]``), and how often the comparison calls it a difference."""
    cases = {**{p: (lambda im, p=p: phone_tone(im, p)) for p in tones},
             **{f"veil {v:g}": (lambda im, v=v: stray_light(im, v)) for v in veils},
             **{f"{kind} {level:g}": (lambda im, kind=kind, level=level: np.rint(255 * perturb.phone_processing(
                 np.asarray(im, np.float32) / 255, kind, level, px_per_mm=CARD_CAPTURE.px_per_mm)).astype(np.uint8))
                for kind, level in processing}}
    out = {"cases": list(cases), "change_pct": {k: [] for k in cases}, "tone_change_pct": {k: [] for k in cases},
           "flagged": {k: 0 for k in cases}, "n": n}
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        skin = synth.make_skin(seed=seed + i, severity=float(rng.uniform(0.3, 0.9)), size_mm=CARD_SKIN_MM)
        base = synth.render(skin, CARD_CAPTURE, seed=1)
        follow = synth.render(skin, synth.recapture(rng, base=CARD_CAPTURE, light_azimuth_jitter_deg=5.0,
                                                    shift_mm=1.5, zoom_jitter=0.03, size_mm=CARD_SKIN_MM), seed=2)
        for key, edit in cases.items():
            c = compare(base, edit(follow))
            k = c.consistency
            out["change_pct"][key].append(c.change_pct)
            out["tone_change_pct"][key].append(k["tone_change_pct"])
            out["flagged"][key] += any("contrast" in d for d in k["differences"])
    return out

# ------------------------------------------------------------------------------------------------ real photos
#: Licensed real photos kept in the repository (see SOURCES.md there).
REAL_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "real"
_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".jfif", ".bmp"}


def real_photos(directory=None) -> list[dict]:
    """Real photos of a folder (recursively): ``[{"name", "rgb", "px_per_mm", "label"}]``.

    The scale comes from the folder's ``manifest.json`` (``{file: {"px_per_mm": ...}}``) when it lists the file,
    otherwise it is Relief's default (the photo's long side spans ``DEFAULT_FIELD_MM``). ``label`` is the name of the
    sub-folder the photo sits in (None at the top level), e.g. a scar type.
    """
    root = Path(directory) if directory is not None else REAL_DIR
    manifest = {}
    if (root / "manifest.json").is_file():
        manifest = json.loads((root / "manifest.json").read_text())
    out = []
    for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_EXT):
        try:
            loaded = read_image(f)
        except ReliefError:
            continue
        rgb = loaded.pixels
        rel = f.relative_to(root)
        ppm = manifest.get(str(rel), {}).get("px_per_mm") or max(rgb.shape[:2]) / DEFAULT_FIELD_MM
        out.append({"name": str(rel), "rgb": rgb, "px_per_mm": float(ppm), "jpeg_quality": loaded.jpeg_quality,
                    "label": rel.parts[0] if len(rel.parts) > 1 else None})
    return out


#: One drift at a time (besides the random visits), to say which part of a visit's drift moves the index.
REAL_SINGLE_DRIFTS = {
    "exposure x0.7": perturb.Drift(exposure=0.7),
    "exposure x1.4": perturb.Drift(exposure=1.4),
    "white balance (1.15, 1, 0.85)": perturb.Drift(white_balance=(1.15, 1.0, 0.85)),
    "light gradient 0.2": perturb.Drift(gradient=0.2, gradient_deg=30.0),
    "rotation 5 deg": perturb.Drift(rotation_deg=5.0),
    "zoom x1.05": perturb.Drift(zoom=1.05),
    "framing 4 %": perturb.Drift(shift=(0.04, -0.03)),
    "JPEG quality 80": perturb.Drift(jpeg_quality=80),
    "JPEG quality 70": perturb.Drift(jpeg_quality=70),  # (below 80 a file carries a warning: measurement.py)
}


def real_recapture(photos: list[dict], *, visits: int = 4, seed: int = 700, single: bool = True) -> dict:
    """Compare each real photo with copies of itself under a visit's drift (:func:`perturb.random_drift`).

    Returns ``{"changes_pct", "mdc_pct", "significant", "n", "failed", "not_alike", "significant_not_alike",
    "single": {drift: [change per photo]}, "photos": [{"name", "codes", "changes_pct", "significant",
    "not_alike"}]}``; ``failed`` counts comparisons that raised (registration refused the pair); ``not_alike``
    the visits whose consistency check found the two photos taken differently (``taken_alike`` false: a visit's
    drift can overexpose or clip a photo), ``significant_not_alike`` the significant ones among them; ``codes``
    are the photo's own quality codes (a photo a careful practitioner would retake need not hold).
    """
    rng = np.random.default_rng(seed)
    changes, mdcs, sig, failed, not_alike, sig_not_alike = [], [], 0, 0, 0, 0
    single_out: dict = {k: [] for k in REAL_SINGLE_DRIFTS} if single else {}
    per_photo = []
    for ph in photos:
        drifts = [("visit", perturb.random_drift(rng)) for _ in range(visits)]
        drifts += list(REAL_SINGLE_DRIFTS.items()) if single else []
        mine = {"name": ph["name"], "codes": measure(ph["rgb"], px_per_mm=ph["px_per_mm"]).quality.codes,
                "changes_pct": [], "significant": 0, "not_alike": 0}
        per_photo.append(mine)
        for name, d in drifts:
            try:
                c = compare(ph["rgb"], perturb.recapture_drift(ph["rgb"], d), px_per_mm=ph["px_per_mm"])
            except ReliefError:
                failed += int(name == "visit")
                continue
            if name == "visit":
                changes.append(c.change_pct)
                mdcs.append(c.mdc_pct)
                sig += int(c.significant)
                differs = not c.consistency.get("taken_alike", True)
                not_alike += int(differs)
                sig_not_alike += int(differs and c.significant)
                mine["changes_pct"].append(c.change_pct)
                mine["significant"] += int(c.significant)
                mine["not_alike"] += int(differs)
            else:
                single_out[name].append(c.change_pct)
    ch = np.array(changes)
    return {"changes_pct": ch.tolist(), "mdc_pct": mdcs, "significant": sig, "n": len(changes), "failed": failed,
            "not_alike": not_alike, "significant_not_alike": sig_not_alike,
            "within_mdc": int(np.sum(np.abs(ch) <= np.array(mdcs))) if len(ch) else 0,
            "sd_pct": float(ch.std(ddof=1)) if len(ch) > 1 else float("nan"), "single": single_out,
            "photos": per_photo}


#: Spot patterns drawn per photo and pigment kind: one draw can land its spots on plain skin or on the relief, so a
#: single seed makes a photo pass or fail by chance.
REAL_PIGMENT_SEEDS = 4


def real_pigment(photos: list[dict], *, seeds: int = REAL_PIGMENT_SEEDS, axes: str = "renderer") -> dict:
    """Index change (%) when pigment is added to each photo (:func:`perturb.add_pigment`), ``seeds`` patterns each.

    The patterns depend on the photo's name only (not on which other photos are in the set). ``axes``:
    ``"renderer"`` adds pigment with the renderer's fixed optical densities; ``"photo"`` with the photo's own
    pigment axes (:func:`perturb.axis_with_leak` of its estimated leak), as the same camera sees new pigment
    on the same skin.

    Returns
    -------
    dict
        ``{"changes": {kind: [change per photo and pattern]}, "worst": {kind: [largest |change| per photo]},
        "names": [photo names]}``.
    """
    if axes not in ("renderer", "photo"):
        raise ValueError(f"axes must be 'renderer' or 'photo', got {axes!r}")
    changes: dict = {k: [] for k in perturb.PIGMENT_KINDS}
    worst: dict = {k: [] for k in perturb.PIGMENT_KINDS}
    for ph in photos:
        m0 = measure(ph["rgb"], px_per_mm=ph["px_per_mm"])
        base = m0.roughness_index
        od = {} if axes == "renderer" else {
            "melanin_od": perturb.axis_with_leak(synth.MELANIN_OD, m0.analysis.separation.leak),
            "haemoglobin_od": perturb.axis_with_leak(synth.HAEMOGLOBIN_OD, m0.analysis.separation.leak)}
        first = zlib.crc32(ph["name"].encode()) % 100_000
        for kind in perturb.PIGMENT_KINDS:
            cs = []
            for j in range(seeds):
                img = perturb.add_pigment(ph["rgb"], kind=kind, px_per_mm=ph["px_per_mm"], seed=first + j, **od)
                cs.append(100 * (measure(img, px_per_mm=ph["px_per_mm"]).roughness_index / base - 1))
            changes[kind] += cs
            # A pattern that leaves the photo unmeasurable (NaN) is a failure, wherever it falls in the list.
            worst[kind].append(max(abs(c) if math.isfinite(c) else math.inf for c in cs))
    return {"changes": changes, "worst": worst, "names": [ph["name"] for ph in photos]}


#: Relief-removing edits, in the order the index must fall: blend toward a 1 mm-smoothed copy by 25/50/75 %,
#: then the Gaussian blur itself at 0.5 and 1 mm.
REAL_SMOOTHING = (("blend 25 %", 1.0, 0.25), ("blend 50 %", 1.0, 0.5), ("blend 75 %", 1.0, 0.75),
                  ("blur 1 mm", 1.0, 1.0))


def real_monotonicity(photos: list[dict]) -> dict:
    """Index change (%) per photo under :data:`REAL_SMOOTHING`; ``monotone`` counts photos whose index falls at
    every step (each step lower than the previous and than the original)."""
    steps: dict = {name: [] for name, *_ in REAL_SMOOTHING}
    monotone = 0
    for ph in photos:
        base = measure(ph["rgb"], px_per_mm=ph["px_per_mm"]).roughness_index
        seq = [base]
        for name, sigma, amount in REAL_SMOOTHING:
            img = perturb.smooth_relief(ph["rgb"], px_per_mm=ph["px_per_mm"], sigma_mm=sigma, amount=amount)
            v = measure(img, px_per_mm=ph["px_per_mm"]).roughness_index
            steps[name].append(100 * (v / base - 1))
            seq.append(v)
        monotone += int(all(b < a for a, b in zip(seq, seq[1:])))
    return {"steps_pct": steps, "monotone": monotone, "n": len(photos)}


#: Phone processing of the same capture (:func:`perturb.phone_processing`): (kind, level) pairs. A phone's
#: sharpening acts at about 1-3 of its pixels (0.02-0.1 mm on a close-up); "HDR", "clarity" and "vivid" modes boost
#: contrast and colour at the scale of the relief itself.
REAL_PROCESSING = (("sharpen 0.1 mm", 0.5), ("sharpen 0.1 mm", 1.0), ("local contrast 3 mm", 0.05),
                   ("local contrast 3 mm", 0.1), ("local contrast 3 mm", 0.2), ("CLAHE", 1.5),
                   ("saturation", 1.2), ("saturation", 1.4), ("noise reduction", 0.75), ("vignetting", 0.3),
                   ("sensor noise", 2.0))


def real_processing(photos: list[dict], *, steps=REAL_PROCESSING) -> dict:
    """Each real photo compared with itself as another phone or camera mode would have processed it.

    Returns ``{"steps": {"<kind> <level>": {"changes_pct", "significant", "not_alike", "failed"}}, "n"}``: the
    index change per photo (NaN where the pair could not be aligned), how many were called significant, and how
    many the comparison's consistency check called "not taken alike".
    """
    out: dict = {}
    for kind, level in steps:
        row = {"changes_pct": [], "significant": 0, "not_alike": 0, "failed": 0}
        for k, ph in enumerate(photos):
            edited = perturb.phone_processing(ph["rgb"], kind, level, px_per_mm=ph["px_per_mm"], seed=k)
            try:
                c = compare(ph["rgb"], edited, px_per_mm=ph["px_per_mm"])
            except ReliefError:
                row["failed"] += 1
                row["changes_pct"].append(float("nan"))
                continue
            row["changes_pct"].append(c.change_pct)
            row["significant"] += int(c.significant)
            row["not_alike"] += int(not c.consistency.get("taken_alike", True))
        out[f"{kind} {level:g}"] = row
    return {"steps": out, "n": len(photos)}


def real_survey(photos: list[dict]) -> dict:
    """Quality-warning rates and, for photos labelled with a scar class, agreement of the dominant class.

    Returns ``{"n", "codes": {code: count}, "agreement": {label: {class: count}}}``; a photo's dominant class is
    the most frequent ``kind`` of its scars (``"none"`` without scars).
    """
    codes: collections.Counter = collections.Counter()
    agree: dict = {}
    for ph in photos:
        m = measure(ph["rgb"], px_per_mm=ph["px_per_mm"])
        codes.update(set(m.quality.codes))
        # (the file's own compression: measure of a file warns about it, of an array it cannot)
        if jpeg_warnings(ph.get("jpeg_quality"), px_per_mm=ph["px_per_mm"]):
            codes["strong JPEG compression"] += 1
        if ph["label"] is not None:
            kinds = collections.Counter(s["kind"] for s in m.scars)
            dom = kinds.most_common(1)[0][0] if kinds else "none"
            agree.setdefault(ph["label"], collections.Counter())[dom] += 1
    return {"n": len(photos), "codes": dict(codes), "agreement": {k: dict(v) for k, v in agree.items()}}


def run_real(directory=None, *, quick: bool = False) -> dict:
    """The real-photo figures for the photos of ``directory`` (default :data:`REAL_DIR`)."""
    photos = real_photos(directory)
    if not photos:
        return {"n_photos": 0}
    return {
        "n_photos": len(photos),
        "recapture": real_recapture(photos, visits=2 if quick else 6, single=not quick),
        "pigment_pct": real_pigment(photos),
        "pigment_own_pct": real_pigment(photos, axes="photo"),
        "monotonicity": real_monotonicity(photos),
        "processing": real_processing(photos, steps=REAL_PROCESSING[1::3] if quick else REAL_PROCESSING),
        "survey": real_survey(photos),
    }

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
        "contrast_on_card": contrast_on_card(n=1 if quick else 4),
        "scar_colour": scar_colour(n=1 if quick else 4),
        "scar_colour_2x": scar_colour(n=1 if quick else 4, strength=2.0, shallower=False),
        "calibration": repeatability_calibration(n=3 if quick else 30),
        "held_out": held_out_spread(n=3 if quick else 60),
        "held_out_card": held_out_with_card(n=3 if quick else 30),
        "held_out_card_tone": held_out_with_card(n=2 if quick else 8, drift="tone curve"),
        "real": run_real(quick=quick),
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
    cc = r["contrast_on_card"]
    print(f"6b. Unchanged skin recaptured with the card ({cc['n']} skins), the follow-up put through a phone's tone "
          "curve v**p, a veil of stray light or local processing: index change from that alone / contrast read on "
          "the card's grey steps; called a difference above ±5 %:")
    for key in cc["cases"]:
        label = f"p = {key:.2f}" if isinstance(key, float) else key
        print(f"   {label:22s}: index " + ", ".join(f"{v:+.1f}" for v in cc["change_pct"][key]) + " %; card "
              + ", ".join(f"{v:+.1f}" for v in cc["tone_change_pct"][key]) + f" %; flagged {cc['flagged'][key]}/{cc['n']}")
    sc = r["scar_colour"]

    def nums(v):
        return ", ".join(f"{x:+.1f}" for x in v)

    print(f"7. Colour inside the scars ({sc['n']} skins; red = haemoglobin, brown = melanin, following each pit):")
    for k in sc["fade_pct"]:
        print(f"   {k:5s} colour fades, pits stay: index change {nums(sc['fade_pct'][k])} % same capture "
              f"(target |change| <= 3 %), {nums(sc['fade_recapture_pct'][k])} % between recaptures")
        print(f"   {k:5s} pits 30 % shallower, colour stays: {nums(sc['shallower_coloured_pct'][k])} % vs "
              f"{nums(sc['shallower_plain_pct'])} % without colour; gap {nums(sc['shallower_gap_pts'][k])} points "
              "(target <= 3)")
    print(f"   fading colour called significant: {sc['fade_significant']} of {2 * sc['n']}   (target 0)")
    s2 = r["scar_colour_2x"]
    print("7b. Twice that colour, fading while the pits stay: "
          + "; ".join(f"{k} {nums(s2['fade_pct'][k])} % same capture, {nums(s2['fade_recapture_pct'][k])} % between "
                      "recaptures" for k in s2["fade_pct"])
          + f"; called significant {s2['fade_significant']} of {2 * s2['n']}")
    cal, ho, rc = r["calibration"], r["held_out"], r["recapture"]
    print(f"8. Repeatability calibrated on {cal['n']} recaptures of a second noise model (other skins, wider drift, "
          f"phone processing; {cal['unaligned']} more could not be aligned): SD {cal['sd_pct']:.2f} %, upper 95 % "
          f"limit {cal['upper_pct']:.2f} % (REPEATABILITY_SD_PCT = {cal['constant_pct']:.1f} %)")
    total = ho["significant"] + rc["significant"]
    n = ho["n"] + rc["n"]
    within = (ho["within_3_pct"] * ho["n"] + sum(abs(c) <= 3.0 for c in rc["changes_pct"])) / n
    print(f"   held-out unchanged pairs called significant: {ho['significant']}/{ho['n']} (second model, unseen "
          f"seeds) + {rc['significant']}/{rc['n']} (validation renders, 2.) = {100 * total / n:.1f} %   "
          "(target <= 5 %)")
    print(f"   held-out changes within ±3 %: {100 * within:.0f} %   (goal: all); held-out second model: "
          f"SD {ho['sd_pct']:.2f} %, max |change| {ho['max_abs_pct']:.2f} %")
    hc, ht = r["held_out_card"], r["held_out_card_tone"]
    print(f"8b. Held-out second-model pairs with the calibration card in both photos ({hc['n']} pairs, 80 mm field), the "
          "follow-up's relief put on the baseline's contrast read on the card (as taken in brackets): within ±3 % "
          f"{100 * hc['within_3']:.0f} % ({100 * hc['within_3_uncorrected']:.0f} %), RMS {hc['rms']:.2f} % "
          f"({hc['rms_uncorrected']:.2f} %), called significant {hc['significant']}/{hc['n']} "
          f"({hc['significant_uncorrected']}/{hc['n']}); corrections read "
          f"{_nan_extreme(hc['correction_pct'], min):+.1f} to {_nan_extreme(hc['correction_pct'], max):+.1f} %")
    print(f"    the tone curve alone ({ht['n']} pairs): RMS {ht['rms']:.2f} % ({ht['rms_uncorrected']:.2f} % as taken)")
    if "real" in r:
        _report_real(r["real"], str(REAL_DIR))
    print(f"({r['seconds']:.0f} s)")


def _nan_extreme(values, pick) -> float:
    """``pick`` (min or max) of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return pick(finite) if finite else float("nan")


def _read_pairs(path) -> list:
    """Rows ``baseline,followup[,px_per_mm]`` (paths relative to the list's folder; ``#`` lines are comments)."""
    path = Path(path)
    pairs = []
    if not path.is_file():
        raise ReliefError(f"{path} not found; give a CSV of baseline,followup[,px_per_mm] rows.")
    with path.open(newline="") as f:
        for row in csv.reader(f):
            row = [c.strip() for c in row]
            if not row or not row[0] or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ReliefError(f"{path.name}: a row needs baseline,followup[,px_per_mm]; got {row}")
            pair = [str(path.parent / row[0]), str(path.parent / row[1])]
            if len(row) > 2 and row[2]:
                pair.append(float(row[2]))
            pairs.append(tuple(pair))
    return pairs


def _fmt(values) -> str:
    v = np.asarray(values, float)
    bad = int(np.count_nonzero(~np.isfinite(v)))
    v = v[np.isfinite(v)]
    note = f" ({bad} not measurable)" if bad else ""
    if not v.size:
        return "n/a" + note
    return f"median {np.median(v):+.1f} %, range {v.min():+.1f} to {v.max():+.1f} %" + note


def _report_real(rr: dict, where: str) -> None:
    print(f"Real photos ({where}): {rr['n_photos']} photo(s), no ground truth; edits of each photo (analyzer.perturb)")
    if not rr["n_photos"]:
        return
    rc = rr["recapture"]
    print(f"9. Recapture drift, {rc['n']} visits: change {_fmt(rc['changes_pct'])}; within the MDC "
          f"{rc['within_mdc']}/{rc['n']}; called significant {rc['significant']}/{rc['n']}; registration refused "
          f"{rc['failed']}   (target: all within the MDC, none significant)")
    print(f"   photos not taken alike (consistency check, shown with the change): {rc['not_alike']}/{rc['n']} "
          f"visits; of the significant ones {rc['significant_not_alike']}/{rc['significant']}")
    for p in rc["photos"]:
        if p["significant"] or p["codes"] or p["not_alike"]:
            print(f"   {p['name']}: quality codes {', '.join(p['codes']) or 'none'}; changes {_fmt(p['changes_pct'])}; "
                  f"significant {p['significant']}; not taken alike {p['not_alike']}")
    for k, v in rc["single"].items():
        print(f"   {k:32s} {_fmt(v)}")
    print(f"10. Pigment added (Beer-Lambert), {REAL_PIGMENT_SEEDS} spot patterns a photo, target |change| <= 5 %:")
    for key, what in (("pigment_pct", "a) with the renderer's fixed pigment vectors"),
                      ("pigment_own_pct", "b) with each photo's own pigment axes (its estimated leak)")):
        pg = rr[key]
        print(f"  {what}:")
        for k, v in pg["changes"].items():
            within = int(np.sum(np.abs(np.asarray(v)) <= 5.0))
            ok = [n for n, w in zip(pg["names"], pg["worst"][k]) if w <= 5.0]
            bad = [f"{n} {w:.1f} %" for n, w in zip(pg["names"], pg["worst"][k]) if w > 5.0]
            print(f"   {k:10s} {_fmt(v)}; edits within 5 %: {within}/{len(v)}; photos with every pattern within "
                  f"5 %: {len(ok)}/{len(pg['names'])}" + (f" (worst elsewhere: {', '.join(bad)})" if bad else ""))
    mo = rr["monotonicity"]
    print(f"11. Relief removed: index falls at every step in {mo['monotone']}/{mo['n']} photos")
    for k, v in mo["steps_pct"].items():
        print(f"   {k:12s} {_fmt(v)}")
    pr = rr["processing"]
    print(f"12. The same capture processed as another phone or camera mode would, {pr['n']} photos (the index moves "
          "where the processing changes contrast at the relief's scale: keep the phone and its mode between visits)")
    for k, v in pr["steps"].items():
        print(f"   {k:26s} {_fmt(v['changes_pct'])}; significant {v['significant']}/{len(v['changes_pct'])}; "
              f"not taken alike {v['not_alike']}" + (f"; not aligned {v['failed']}" if v["failed"] else ""))
    sv = rr["survey"]
    print(f"13. Quality codes on {sv['n']} photos: "
          + (", ".join(f"{k} {v} ({100 * v / sv['n']:.0f} %)" for k, v in sorted(sv["codes"].items())) or "none"))
    for label, counts in sorted(sv["agreement"].items()):
        n = sum(counts.values())
        print(f"    labelled {label!r} ({n}): dominant class " + ", ".join(f"{k} {v}" for k, v in
                                                                        sorted(counts.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.validate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer renders")
    ap.add_argument("--calibrate", metavar="PAIRS.csv",
                    help="instead: calibrate the repeatability on real recaptures of unchanged skin listed as "
                         "baseline,followup[,px_per_mm] rows")
    ap.add_argument("--drift-budget", action="store_true",
                    help="instead: the held-out pairs' spread taken apart, one drift at a time (20 pairs each, ~10 min)")
    ap.add_argument("--real-dir", metavar="DIR",
                    help="only the real-photo section, on the photos of DIR (sub-folders = labels, e.g. scar types); "
                         "for photos that may not be kept in the repository")
    args = ap.parse_args(argv)
    if args.real_dir:
        if not Path(args.real_dir).is_dir():
            ap.exit(2, f"error: {args.real_dir} is not a folder; pass a folder of photos\n")
        t = time.perf_counter()
        _report_real(run_real(args.real_dir, quick=args.quick), args.real_dir)
        print(f"({time.perf_counter() - t:.0f} s)")
        return 0
    if args.drift_budget:
        r = drift_budget(n=3 if args.quick else 20)
        total = held_out_spread(n=3 if args.quick else 20)
        print(f"Unchanged pairs of the second model, one drift at a time (RMS change; all together "
              f"{total['sd_pct']:.2f} % SD, {100 * total['within_3_pct']:.0f} % within ±3 %):")
        for name, v in sorted(r.items(), key=lambda kv: -kv[1]["rms_pct"]):
            print(f"   {name:20s} {v['rms_pct']:5.2f} %   max {v['max_abs_pct']:5.2f} %   within ±3 %: "
                  f"{100 * v['within_3']:.0f} %")
        return 0
    if args.calibrate:
        try:
            r = calibrate_repeatability(_read_pairs(args.calibrate))
        except (ReliefError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{r['n']} recapture pairs: change " + ", ".join(f"{c:+.2f}" for c in r["changes_pct"]) + " %")
        print(f"repeatability SD {r['sd_pct']:.2f} %, upper 95 % limit {r['upper_pct']:.2f} % "
              f"(REPEATABILITY_SD_PCT = {REPEATABILITY_SD_PCT:.1f} %); within ±3 %: {100 * r['within_3_pct']:.0f} %; "
              f"called significant: {r['significant']}/{r['n']}")
        return 0
    _report(run_validation(quick=args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
