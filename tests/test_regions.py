"""Face detection and standard face regions, on the real portrait shipped with scikit-image.

Landmarks of ``skimage.data.astronaut()`` were read off the picture by eye (pixel coordinates x, y):
eyes (204, 101) and (245, 104), nose tip (224, 125), mouth centre (224, 146), chin tip (224, 177).
"""
from __future__ import annotations

import itertools
import math
import time

import cv2
import numpy as np
import pytest
from skimage import data

from analyzer.errors import ImageError, OptionError
from analyzer.regions import REGION_NAMES, FaceBox, face_regions, find_face, region_from_box

EYES = np.array([[204.0, 101.0], [245.0, 104.0]])  # image-left eye (patient's right) first
NOSE = np.array([224.0, 125.0])
MOUTH = np.array([224.0, 146.0])
CHIN = np.array([224.0, 177.0])
ROLL = math.degrees(math.atan2(EYES[1, 1] - EYES[0, 1], EYES[1, 0] - EYES[0, 0]))


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut().astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def regions(astronaut):
    r = face_regions(astronaut)
    assert r is not None
    return r


def test_face_found_around_the_annotated_landmarks(astronaut):
    f = find_face(astronaut)
    assert f is not None
    for p in (*EYES, NOSE, MOUTH):
        assert f.x <= p[0] <= f.x + f.w and f.y <= p[1] <= f.y + f.h
    assert f.eyes is not None
    assert np.abs(f.eyes - EYES).max() < 6
    assert f.roll_deg == pytest.approx(ROLL, abs=3)


def test_all_regions_present_and_inside_the_image(astronaut, regions):
    assert set(regions) == set(REGION_NAMES)
    H, W = astronaut.shape[:2]
    for r in regions.values():
        assert r.polygon.min() >= -0.5 and r.polygon[:, 0].max() <= W - 0.5 and r.polygon[:, 1].max() <= H - 0.5
        assert r.mask(astronaut.shape).sum() > 100


def test_cheeks_lie_either_side_of_the_nose_between_eyes_and_mouth(regions):
    right, left = regions["right cheek"], regions["left cheek"]  # patient's right = image left
    assert right.polygon[:, 0].max() < NOSE[0] - 5
    assert left.polygon[:, 0].min() > NOSE[0] + 5
    for cheek in (right, left):
        assert EYES[:, 1].max() < cheek.centroid[1] < MOUTH[1]


def test_forehead_is_above_the_eyes_and_chin_below_the_mouth(regions):
    fh, chin = regions["forehead"], regions["chin"]
    assert fh.polygon[:, 1].max() < EYES[:, 1].min() - 3
    assert abs(fh.centroid[0] - NOSE[0]) < 10
    assert MOUTH[1] < chin.centroid[1] < CHIN[1] + 5
    assert abs(chin.centroid[0] - NOSE[0]) < 10


def test_temples_are_outside_the_eyes_on_the_patients_sides(regions):
    assert regions["right temple"].centroid[0] < EYES[0, 0] - 5
    assert regions["left temple"].centroid[0] > EYES[1, 0] + 5
    for side in ("left temple", "right temple"):
        assert regions[side].centroid[1] < EYES[:, 1].max() + 5


def test_regions_barely_overlap(astronaut, regions):
    masks = {k: r.mask(astronaut.shape) for k, r in regions.items()}
    for a, b in itertools.combinations(masks, 2):
        inter = (masks[a] & masks[b]).sum()
        assert inter <= 0.02 * min(masks[a].sum(), masks[b].sum()), (a, b)


@pytest.mark.parametrize("angle", [-10.0, 10.0])
def test_regions_follow_a_rotated_photo(astronaut, regions, angle):
    H, W = astronaut.shape[:2]
    M = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)  # angle > 0: counter-clockwise on screen
    rotated = cv2.warpAffine(astronaut, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    f = find_face(rotated)
    assert f is not None
    assert f.roll_deg == pytest.approx(ROLL - angle, abs=4)
    moved = face_regions(rotated, face=f)
    tol = 0.12 * f.w
    for name in REGION_NAMES:
        expected = M[:, :2] @ regions[name].centroid + M[:, 2]
        assert np.linalg.norm(moved[name].centroid - expected) < tol, name


@pytest.mark.parametrize("scale", [0.6, 2.5])
def test_regions_follow_a_rescaled_photo(astronaut, regions, scale):
    H, W = astronaut.shape[:2]
    size = (round(W * scale), round(H * scale))
    img = cv2.resize(astronaut, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    moved = face_regions(img)
    assert moved is not None
    face_w = find_face(img).w
    assert face_w == pytest.approx(find_face(astronaut).w * scale, rel=0.15)
    for name in REGION_NAMES:
        expected = (regions[name].centroid + 0.5) * scale - 0.5
        assert np.linalg.norm(moved[name].centroid - expected) < 0.1 * face_w, name


def _skin_texture(seed=0, shape=(600, 800)):
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 4.0)
    t /= t.std()
    pits = cv2.GaussianBlur((rng.random(shape) > 0.998).astype(np.float32), (0, 0), 3.0)
    shade = 0.1 * t - 3.0 * pits
    base = np.array([0.78, 0.60, 0.52], np.float32)
    return np.clip(base * (1 + shade[:, :, None]), 0, 1).astype(np.float32)


@pytest.mark.parametrize("photo", ["coffee", "skin", "flat"])
def test_photo_without_a_face_gives_none(photo):
    img = {"coffee": lambda: data.coffee().astype(np.float32) / 255.0,
           "skin": _skin_texture,
           "flat": lambda: np.full((480, 640, 3), 0.6, np.float32)}[photo]()
    assert find_face(img) is None
    assert face_regions(img) is None


def test_face_detection_is_fast_on_a_large_photo(astronaut):
    big = cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_LINEAR)  # 9 MP
    find_face(astronaut)  # warm-up: cascades loaded once
    t0 = time.perf_counter()
    f = find_face(big)
    elapsed = time.perf_counter() - t0
    assert f is not None and f.w == pytest.approx(3000 / 512 * 93, rel=0.2)
    assert elapsed < 1.5, f"find_face took {elapsed:.2f} s on 9 MP"


def test_a_given_face_box_places_regions_without_detection():
    blank = np.zeros((400, 400, 3), np.float32)
    f = FaceBox(x=100, y=100, w=200, h=200)
    r = face_regions(blank, face=f)
    eye = f.eye_centre
    assert eye == pytest.approx([200, 176])
    assert r["forehead"].centroid[1] < eye[1] < r["left cheek"].centroid[1]
    assert r["right cheek"].centroid[0] < 200 < r["left cheek"].centroid[0]
    # a head rolled by 90° (clockwise on screen) turns the frame: the forehead is then to the eyes' right
    r90 = face_regions(blank, face=FaceBox(x=100, y=100, w=200, h=200, roll_deg=90.0))
    assert r90["forehead"].centroid[0] > eye[0] and abs(r90["forehead"].centroid[1] - eye[1]) < 5


def test_regions_partly_outside_the_photo_are_clipped_or_dropped():
    small = np.zeros((120, 200, 3), np.float32)
    r = face_regions(small, face=FaceBox(x=50, y=30, w=100, h=100))
    assert "chin" not in r  # the chin would lie below the photo
    assert "forehead" in r and r["forehead"].polygon[:, 1].min() >= -0.5


def test_hand_drawn_region_covers_exactly_its_box():
    r = region_from_box("left cheek", 10, 20, 30, 40)
    assert r.bbox == (10, 20, 30, 40)
    m = r.mask((100, 100))
    assert m.sum() == 30 * 40 and m[20, 10] and m[59, 39] and not m[60, 40] and not m[19, 10]
    assert r.area_px == pytest.approx(30 * 40)
    assert r.to_dict()["name"] == "left cheek"


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (0, 0, 10, -1), (float("nan"), 0, 10, 10)])
def test_impossible_hand_drawn_box_raises_option_error(box):
    with pytest.raises(OptionError):
        region_from_box("x", *box)


@pytest.mark.parametrize("shape", [(10, 10, 4), (10,), (10, 10, 2)])
def test_non_rgb_input_raises_image_error(shape):
    with pytest.raises(ImageError):
        face_regions(np.zeros(shape, np.float32))
