"""Strong JPEG compression is reported: the quality a JPEG was saved with is read from its quantisation table, and
a photo saved below quality 80 whose 8-px blocks are ≥ 0.2 mm on the skin (a resized copy, as messaging apps and
e-mail send) gets a warning that says what to do; camera originals, other formats and arrays do not."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from analyzer import compare, measure
from analyzer.loading import jpeg_quality, read_image
from analyzer.measurement import JPEG_BLOCK_MM, JPEG_MIN_QUALITY, jpeg_warnings


@pytest.fixture(scope="module")
def photo(skin_make, skin_photo, skin_small_capture):
    """900 × 600 px of a 30 mm wide view: 30 px/mm, 8-px blocks of 0.27 mm."""
    return np.ascontiguousarray(skin_photo(skin_make(seed=3), skin_small_capture))


def save(path, rgb, quality, *, writer="opencv"):
    if writer == "opencv":
        assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        Image.fromarray(rgb).save(path, "JPEG", quality=quality)
    return path


@pytest.mark.parametrize("writer", ["opencv", "pillow"])
@pytest.mark.parametrize("quality", [20, 50, 75, 80, 92, 100])
def test_the_quality_libjpeg_saved_with_is_read_back(tmp_path, photo, quality, writer):
    path = save(tmp_path / "p.jpg", photo, quality, writer=writer)
    with Image.open(path) as im:
        assert jpeg_quality(im) == pytest.approx(quality, abs=1.0)
    assert read_image(path).jpeg_quality == pytest.approx(quality, abs=1.0)


def test_other_formats_have_no_jpeg_quality(tmp_path, photo):
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    assert read_image(path).jpeg_quality is None


def test_a_strongly_compressed_resized_photo_is_warned_about_with_what_to_do(tmp_path, photo):
    m = measure(save(tmp_path / "q60.jpg", photo, 60), px_per_mm=30.0)
    (w,) = [w for w in m.warnings if "JPEG" in w]
    assert "quality about 60" in w and "0.27 mm" in w and "original photo" in w
    assert np.isfinite(m.roughness_index)  # a warning, not a refusal


@pytest.mark.parametrize("quality, px_per_mm, warned", [
    (92, 30.0, False),   # a camera's own quality
    (80, 30.0, False),   # at the threshold (real photos: up to +6.7 %, within the MDC)
    (75, 30.0, True),
    (60, 60.0, False),   # blocks of 0.13 mm: below the texture measured (a 12 MP close-up's are 0.12 mm)
    (60, 30.0, True),
])
def test_the_warning_needs_both_strong_compression_and_coarse_blocks(tmp_path, photo, quality, px_per_mm, warned):
    m = measure(save(tmp_path / "p.jpg", photo, quality), px_per_mm=px_per_mm)
    assert any("JPEG compression" in w for w in m.warnings) is warned


def test_arrays_and_lossless_files_are_not_warned_about(tmp_path, photo):
    assert not any("JPEG" in w for w in measure(photo, px_per_mm=30.0).warnings)
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    assert not any("JPEG" in w for w in measure(path, px_per_mm=30.0).warnings)


def test_a_comparison_warns_about_the_compressed_photo_only(tmp_path, photo):
    c = compare(save(tmp_path / "a.jpg", photo, 95), save(tmp_path / "b.jpg", photo, 55), px_per_mm=30.0)
    assert not any("JPEG" in w for w in c.baseline.warnings)
    assert any("JPEG compression" in w for w in c.followup.warnings)


def test_thresholds_are_the_documented_ones():
    assert (JPEG_MIN_QUALITY, JPEG_BLOCK_MM) == (80.0, 0.2)
    assert jpeg_warnings(None, px_per_mm=10.0) == [] and jpeg_warnings(70.0, px_per_mm=0.0) == []
    (w,) = jpeg_warnings(79.7, px_per_mm=40.0)  # blocks of exactly 0.2 mm count
    assert "quality about 79;" in w  # never printed as the threshold itself


def test_an_unreadable_table_gives_no_estimate_rather_than_an_error(tmp_path, photo):
    path = save(tmp_path / "p.jpg", photo, 90)
    with Image.open(path) as im:
        im.quantization = {0: [0] * 64}  # no usable table
        assert jpeg_quality(im) is None
        im.quantization = {}
        assert jpeg_quality(im) is None


def test_the_real_photo_survey_counts_strongly_compressed_files(tmp_path, photo):
    import json

    from analyzer import validate
    save(tmp_path / "sent.jpg", photo, 60)
    save(tmp_path / "original.jpg", photo, 95)
    (tmp_path / "manifest.json").write_text(json.dumps({"sent.jpg": {"px_per_mm": 30.0},
                                                         "original.jpg": {"px_per_mm": 30.0}}))
    photos = validate.real_photos(tmp_path)
    assert {p["name"]: round(p["jpeg_quality"]) for p in photos} == {"original.jpg": 95, "sent.jpg": 60}
    assert validate.real_survey(photos)["codes"].get("strong JPEG compression") == 1
