"""Odd-but-valid files measure like their plain twin (issue: every common kind of photo file).

One rendered skin photo is written as a plain 8-bit PNG and as every other kind a clinic meets — JPEG, 16-bit PNG,
gray PNG, RGBA PNG, WebP, TIFF, HEIC and an EXIF-rotated JPEG — and each is measured from its file. The roughness
index must stay within 3 % of the plain twin's (gray: within 3 % of the twin's gray rendering).
"""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from analyzer import load_image, measure, synth

PX_PER_MM = 30.0


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    skin = synth.make_skin(seed=11, severity=0.6)
    return synth.render(skin, synth.Capture(out_px=(900, 600), field_mm=30.0, jpeg_quality=None), seed=1)


@pytest.fixture(scope="module")
def plain(photo, tmp_path_factory) -> float:
    path = tmp_path_factory.mktemp("plain") / "plain.png"
    Image.fromarray(photo).save(path)
    return measure(path, px_per_mm=PX_PER_MM).roughness_index


def _exif_rotated(rgb: np.ndarray, path) -> None:
    # Orientation 6: the stored pixels are the upright picture turned 90° counter-clockwise; viewers turn it back.
    stored = Image.fromarray(np.rot90(rgb, 1).copy())
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif.tobytes())


def _png16(rgb: np.ndarray, path) -> None:
    cv2.imwrite(str(path), rgb[..., ::-1].astype(np.uint16) * 257)  # true 16-bit PNG (BGR order for OpenCV)


def _heic(rgb: np.ndarray, path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=95)


WRITERS = {
    "jpeg": lambda rgb, p: Image.fromarray(rgb).save(p, quality=95),
    "png16": _png16,
    "rgba.png": lambda rgb, p: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(p),
    "webp": lambda rgb, p: Image.fromarray(rgb).save(p, quality=95),
    "tiff": lambda rgb, p: Image.fromarray(rgb).save(p),
    "heic": _heic,
    "exif.jpg": _exif_rotated,
}
SUFFIX = {"jpeg": ".jpg", "png16": ".png", "rgba.png": ".png", "webp": ".webp", "tiff": ".tif", "heic": ".heic",
          "exif.jpg": ".jpg"}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_file_kind_measures_within_3_percent_of_its_plain_twin(photo, plain, tmp_path, kind):
    path = tmp_path / f"photo{SUFFIX[kind]}"
    WRITERS[kind](photo, path)
    assert load_image(path).shape == photo.shape  # upright (EXIF applied), three channels
    value = measure(path, px_per_mm=PX_PER_MM).roughness_index
    assert value == pytest.approx(plain, rel=0.03), (kind, value, plain)


def test_gray_photo_measures_like_its_gray_twin_array(photo, tmp_path):
    gray = np.round(photo @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    from_file = measure(path, px_per_mm=PX_PER_MM).roughness_index
    from_array = measure(np.dstack([gray] * 3), px_per_mm=PX_PER_MM).roughness_index
    assert np.isfinite(from_file)
    assert from_file == pytest.approx(from_array, rel=0.03)


def test_bytes_in_memory_and_on_disk_agree(photo, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG")
    path = tmp_path / "p.png"
    path.write_bytes(buf.getvalue())
    a = measure(path, px_per_mm=PX_PER_MM).roughness_index
    b = measure(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), px_per_mm=PX_PER_MM).roughness_index
    assert a == pytest.approx(b, rel=0.002)
