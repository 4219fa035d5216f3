"""analyzer.scars: pits in the height proxy — on hand-made relief maps with planted pits of known size, depth and
place, and on skins rendered by analyzer.synth whose scar list (positions in patch mm) is the ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from analyzer import scars, synth
from analyzer.relief import ReliefMaps

P = 10.0  # px per mm of the hand-made maps
SHAPE = (300, 400)
KINDS = {"narrow", "medium", "wide"}


def raised_cosine_pit(cx_px, cy_px, diameter_mm, depth_mm):
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(np.float64)
    t = np.hypot(xx - cx_px, yy - cy_px) / (0.5 * diameter_mm * P)
    return np.where(t < 1.0, -depth_mm * 0.5 * (1.0 + np.cos(np.pi * np.minimum(t, 1.0))), 0.0)


#: (x_mm, y_mm, diameter_mm, depth_mm, expected kind)
PITS = [(5.0, 6.0, 0.8, 0.10, "narrow"), (16.0, 8.0, 2.0, 0.10, "medium"), (29.0, 19.0, 4.0, 0.08, "wide"),
        (10.0, 21.0, 2.6, 0.05, "medium")]
PORES = [(22.0, 5.0), (34.0, 7.0), (20.0, 23.0), (6.0, 14.0), (24.0, 14.0)]


def make_maps(scar_h, fine):
    mask = np.zeros(SHAPE, bool)
    mask[10:-10, 10:-10] = True
    return ReliefMaps(px_per_mm=P, mask=mask, slope={},
                      height={"fine": fine.astype(np.float32), "scar": scar_h.astype(np.float32)})


def background(rng, um):
    """Bounded texture, uniform in ±``um`` µm: never deeper than the detector's relative threshold (a Gaussian
    background would make an occasional 4-sigma pit on its own)."""
    return 1e-3 * um * rng.uniform(-1.0, 1.0, SHAPE)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(11)
    scar_h = background(rng, 1.0)
    for x, y, d, z, _ in PITS:
        scar_h = scar_h + raised_cosine_pit(x * P, y * P, d, z)
    fine = background(rng, 1.0)
    for x, y in PORES:
        fine = fine + raised_cosine_pit(x * P, y * P, 0.3, 0.01)
    maps = make_maps(scar_h, fine)
    return maps, scars.find_pits(maps)


def nearest(found, x, y):
    return min(found, key=lambda s: np.hypot(s["x_mm"] - x, s["y_mm"] - y))


def test_planted_pits_are_found_at_their_place_with_their_kind(planted):
    _, pits = planted
    assert len(pits.scars) == len(PITS)
    for x, y, d, z, kind in PITS:
        s = nearest(pits.scars, x, y)
        assert np.hypot(s["x_mm"] - x, s["y_mm"] - y) < 0.15
        assert s["kind"] == kind
        # outline at a small fraction of the depth: the equivalent diameter is most of the rim diameter
        assert 0.75 * d <= s["diameter_mm"] <= 1.0 * d
        assert s["depth_um"] == pytest.approx(z * 1000.0, rel=0.05)
        assert s["area_mm2"] == pytest.approx(np.pi * s["diameter_mm"] ** 2 / 4, rel=1e-9)


def test_label_map_ids_match_the_scar_list(planted):
    maps, pits = planted
    assert pits.scar_labels.shape == SHAPE and pits.scar_labels.dtype == np.int32
    ids = [s["id"] for s in pits.scars]
    assert ids == list(range(1, len(ids) + 1))
    assert set(np.unique(pits.scar_labels)) == {0, *ids}
    for s in pits.scars:
        region = pits.scar_labels == s["id"]
        assert region.sum() / P**2 == pytest.approx(s["area_mm2"], rel=1e-9)
        yy, xx = np.nonzero(region)
        assert xx.mean() / P == pytest.approx(s["x_mm"], abs=1e-6)
        assert yy.mean() / P == pytest.approx(s["y_mm"], abs=1e-6)
        assert not (region & ~maps.mask).any()


def test_planted_pores_are_in_the_pore_mask_and_not_in_scars(planted):
    _, pits = planted
    for x, y in PORES:
        assert pits.pore_mask[int(round(y * P)), int(round(x * P))]
    assert not (pits.pore_mask & (pits.scar_labels > 0)).any()


def test_metrics_follow_from_the_scar_list(planted):
    maps, pits = planted
    area_cm2 = maps.mask.sum() / P**2 / 100.0
    m = pits.metrics
    assert m["scar_density"] == pytest.approx(len(PITS) / area_cm2)
    assert m["scar_area_fraction"] == pytest.approx(100.0 * (pits.scar_labels > 0).sum() / maps.mask.sum())
    assert m["scar_depth_proxy"] == pytest.approx(np.mean([s["depth_um"] for s in pits.scars]))
    assert m["pore_density"] >= len(PORES) / area_cm2
    assert 0 < m["pore_area_fraction"] < 5


def test_background_texture_alone_gives_no_scars():
    rng = np.random.default_rng(12)
    pits = scars.find_pits(make_maps(background(rng, 5.0), background(rng, 1.0)))
    assert pits.scars == [] and pits.metrics["scar_density"] == 0.0 and pits.metrics["scar_depth_proxy"] == 0.0
    assert not pits.scar_labels.any()


@pytest.mark.parametrize("texture_um, found", [(1.0, True), (8.0, False)])
def test_pit_threshold_is_relative_to_the_background_texture(texture_um, found):
    # a 10 µm pit stands out of ±1 µm texture but not out of ±8 µm texture (threshold: 4 robust SDs)
    rng = np.random.default_rng(13)
    scar_h = background(rng, texture_um) + raised_cosine_pit(200, 150, 2.0, 0.010)
    pits = scars.find_pits(make_maps(scar_h, background(rng, 1.0)))
    assert (len(pits.scars) == 1) is found
    if found:
        assert np.hypot(pits.scars[0]["x_mm"] - 20.0, pits.scars[0]["y_mm"] - 15.0) < 0.15


# ------------------------------------------------------------------------------------ rendered ground truth
def truth_on_grid(skin, capture, maps):
    """True scars mapped to the analysis grid: list of (ScarTruth, x_px, y_px) with centres on the mask."""
    h, w = maps.mask.shape
    f = w / capture.out_px[0]  # grid px per photo px (area resampling: centres map as (u + 0.5) f - 0.5)
    u, v = synth.to_photo_px(skin, capture, [s.x_mm for s in skin.scars], [s.y_mm for s in skin.scars])
    out = []
    for s, x, y in zip(skin.scars, (u + 0.5) * f - 0.5, (v + 0.5) * f - 0.5):
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < w and 0 <= yi < h and maps.mask[yi, xi]:
            out.append((s, x, y))
    return out


def discs(shape, centres, px_per_mm, margin_mm=0.0):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    out = np.zeros(shape, bool)
    for s, x, y in centres:
        out |= np.hypot(xx - x, yy - y) <= (0.5 * s.diameter_mm + margin_mm) * px_per_mm
    return out


@pytest.fixture(scope="module")
def severe(skin_make, skin_measured):
    skin = skin_make(1, 0.8)
    cap = synth.Capture()
    m = skin_measured(skin, cap)
    maps = m.analysis.maps
    # every scar whose centre is in view, also those whose centre is just outside the mask (for precision)
    h, w = maps.mask.shape
    f = w / cap.out_px[0]
    u, v = synth.to_photo_px(skin, cap, [s.x_mm for s in skin.scars], [s.y_mm for s in skin.scars])
    everywhere = list(zip(skin.scars, (u + 0.5) * f - 0.5, (v + 0.5) * f - 0.5))
    return {"skin": skin, "m": m, "maps": maps, "labels": m.analysis.pits.scar_labels,
            "truth": truth_on_grid(skin, cap, maps), "everywhere": everywhere}


def test_most_scars_of_at_least_1_5_mm_are_detected(severe):
    maps, labels = severe["maps"], severe["labels"]
    big = [t for t in severe["truth"] if t[0].diameter_mm >= 1.5]
    assert len(big) >= 8  # enough scars for the rate to mean something
    hits = [(labels[discs(labels.shape, [t], maps.px_per_mm)] > 0).mean() > 0.3 for t in big]
    recall = float(np.mean(hits))
    assert recall >= 0.7, f"{sum(hits)} of {len(big)} scars >= 1.5 mm detected"


def test_few_detections_are_not_scars(severe):
    maps, labels, found = severe["maps"], severe["labels"], severe["m"].scars
    assert len(found) >= 8
    near_truth = discs(labels.shape, severe["everywhere"], maps.px_per_mm, margin_mm=0.5)
    chance = near_truth[maps.mask].mean()
    real = [near_truth[labels == s["id"]].mean() >= 0.5 for s in found]
    precision = float(np.mean(real))
    assert chance < 0.4  # scars do not cover the view: a random detector would score low
    assert precision >= 0.6, f"{sum(real)} of {len(found)} detections lie on true scars"


def test_detections_on_scarred_skin_are_deep_and_many_compared_to_scar_free_skin(skin_make, skin_measured, severe):
    clear = skin_measured(skin_make(1, 0.0), synth.Capture())
    assert clear.metrics["scar_density"] <= 0.5  # per cm²: almost none (truth: 0)
    assert severe["m"].metrics["scar_density"] >= 4 * max(clear.metrics["scar_density"], 0.1)
    assert severe["m"].metrics["scar_depth_proxy"] > 2 * clear.metrics["scar_depth_proxy"]


def test_shallower_scars_give_a_smaller_depth_proxy(skin_make, skin_measured, severe):
    half = skin_measured(skin_make(1, 0.8, depth=0.5), synth.Capture())
    ratio = half.metrics["scar_depth_proxy"] / severe["m"].metrics["scar_depth_proxy"]
    assert ratio < 0.75


def test_rendered_scar_labels_match_the_scar_list_and_kinds(severe):
    labels, found, p = severe["labels"], severe["m"].scars, severe["maps"].px_per_mm
    assert set(np.unique(labels)) == {0, *(s["id"] for s in found)}
    for s in found:
        assert s["kind"] in KINDS
        expected = ("narrow" if s["diameter_mm"] < scars.NARROW_MAX_MM
                    else "wide" if s["diameter_mm"] >= scars.WIDE_MIN_MM else "medium")
        assert s["kind"] == expected
        assert (labels == s["id"]).sum() / p**2 == pytest.approx(s["area_mm2"], rel=1e-9)
        assert scars.SCAR_MIN_MM <= s["diameter_mm"] <= scars.SCAR_MAX_MM * np.sqrt(1.5)
        assert s["depth_um"] > 0


def test_size_classes_come_from_the_registry_and_cover_every_diameter():
    from analyzer.registry import SCAR_CLASSES
    assert set(SCAR_CLASSES) == KINDS
    for d, name in ((0.3, "narrow"), (1.19, "narrow"), (1.2, "medium"), (2.99, "medium"), (3.0, "wide"),
                    (7.5, "wide")):
        assert scars._classify(d) == name


def test_relative_depth_does_not_depend_on_the_light_obliquity():
    # The height proxy scales with the light's obliquity; the depth in units of the band's spread does not.
    rng = np.random.default_rng(4)
    fine = background(rng, 2)
    scar_h = background(rng, 6) + sum(raised_cosine_pit(x * P, y * P, d, z) for x, y, d, z, _ in PITS)
    a = scars.find_pits(make_maps(scar_h, fine)).scars
    b = scars.find_pits(make_maps(2.0 * scar_h, 2.0 * fine)).scars
    assert len(a) == len(b) > 0
    for sa, sb in zip(a, b):
        assert sb["depth_um"] == pytest.approx(2 * sa["depth_um"], rel=1e-5)
        assert sb["depth_rel"] == pytest.approx(sa["depth_rel"], rel=1e-5)
