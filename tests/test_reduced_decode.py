"""Decoding only the pixels the analysis needs (issue 9, item 7): JPEGs are read with libjpeg's DCT scaling at the
share of pixels the 10 px/mm analysis grid (and the card search) needs, upright, and the numbers are those of a
full decode within resampling noise; a card that shows the photo needs finer pixels makes it decode finer."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from analyzer import measure, synth
from analyzer.loading import read_image
from analyzer.measurement import needed_share, prepare


def write_jpeg(path, rgb: np.ndarray, *, orientation: int | None = None, quality: int = 92):
    im = Image.fromarray(np.ascontiguousarray(rgb))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    im.save(path, "JPEG", quality=quality, exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def photo_2400(skin_make):
    """2400 × 1800 px of a 60 mm wide view: 40 px/mm, four times the analysis grid."""
    skin = synth.make_skin(seed=4, severity=0.6, size_mm=(70.0, 55.0), px_per_mm=30.0)
    return synth.render(skin, synth.Capture(field_mm=60.0, out_px=(2400, 1800)), seed=4)


@pytest.mark.parametrize("size, px_per_mm, share", [
    ((4000, 3000), None, 0.25),    # default scale 67 px/mm and card search on 1000 px both allow 1/4
    ((4000, 3000), 66.7, 0.25),
    ((4000, 3000), 20.0, 1.0),     # a wide view: every pixel is needed
    ((2600, 1950), None, 0.5),
    ((3000, 4000), None, 0.25),    # portrait: the default 60 mm span the long side, as for landscape
    ((1200, 900), None, 1.0),
])
def test_needed_share_keeps_at_least_one_and_a_half_grid_pixels_per_mm(size, px_per_mm, share):
    assert needed_share(size, px_per_mm=px_per_mm) == share


def test_reduced_decode_matches_a_reduced_full_decode(tmp_path, photo_2400):
    path = write_jpeg(tmp_path / "p.jpg", photo_2400)
    full = read_image(path)
    quarter = read_image(path, reduce=0.25)
    assert quarter.pixels.shape == (450, 600, 3) and quarter.downscale == pytest.approx(4.0)
    assert quarter.original_size == full.original_size == (2400, 1800)
    area = cv2.resize(full.pixels, (600, 450), interpolation=cv2.INTER_AREA)
    assert np.abs(quarter.pixels - area).mean() < 1.5 / 255  # the DCT-domain reduction is an area average


@pytest.mark.parametrize("orientation, upright_hw", [(6, (2400, 1800)), (3, (1800, 2400)), (8, (2400, 1800))])
def test_reduced_decode_honours_the_exif_orientation(tmp_path, photo_2400, orientation, upright_hw):
    path = write_jpeg(tmp_path / "o.jpg", photo_2400, orientation=orientation)
    full = read_image(path)
    half = read_image(path, reduce=0.5)
    assert full.pixels.shape[:2] == upright_hw
    assert half.pixels.shape[:2] == (upright_hw[0] // 2, upright_hw[1] // 2)
    area = cv2.resize(full.pixels, half.pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(half.pixels - area).mean() < 1.5 / 255  # same way up, same content


def test_measure_of_a_path_decodes_only_what_it_needs_and_reads_as_the_full_decode(tmp_path, photo_2400):
    path = write_jpeg(tmp_path / "m.jpg", photo_2400)
    prep = prepare(path, px_per_mm=40.0)
    assert prep.loaded.downscale == pytest.approx(2.0)  # 20 px/mm decoded: >= 15 needed
    assert prepare(path).loaded.downscale == pytest.approx(2.0)  # default scale, card search on 1200 px
    from_path = measure(path, px_per_mm=40.0)
    from_array = measure(read_image(path).pixels, px_per_mm=40.0)
    assert from_path.roughness_index == pytest.approx(from_array.roughness_index, rel=0.01)
    assert from_path.metrics["fine_texture_index"] == pytest.approx(from_array.metrics["fine_texture_index"],
                                                                     rel=0.02)
    assert from_path.px_per_mm == pytest.approx(40.0)


def test_a_wide_photo_whose_card_needs_every_pixel_is_decoded_again_in_full(tmp_path):
    # 2600 px at 12.8 px/mm: decoded at 1/2 for the card search, the card then shows that all pixels are needed
    skin = synth.make_skin(seed=5, severity=0.5, size_mm=(220, 170), px_per_mm=20)
    cap = synth.Capture(field_mm=2600 / 12.8, out_px=(2600, 1950), card_center_mm=(100, 80))
    path = write_jpeg(tmp_path / "wide.jpg", synth.render(skin, cap, seed=1))
    prep = prepare(path)
    assert prep.source == "card"
    assert prep.loaded.downscale == 1.0
    assert prep.px_per_mm * prep.downscale == pytest.approx(12.8, rel=0.002)


def test_a_small_photo_is_never_decoded_below_the_smallest_accepted_side(tmp_path, photo_2400):
    # 800 × 600 px at 60 px/mm would be decoded at 1/4 (200 × 150 px): too small a photo, were it the file
    path = write_jpeg(tmp_path / "s.jpg", cv2.resize(photo_2400, (800, 600), interpolation=cv2.INTER_AREA))
    small = read_image(path, reduce=0.25)
    assert small.pixels.shape[:2] == (300, 400) and small.downscale == pytest.approx(2.0)
    m = measure(path, px_per_mm=60.0)
    assert m.px_per_mm == pytest.approx(60.0)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("reduce", [1.0, 0.5, 0.25, 0.125])
@pytest.mark.parametrize("progressive, subsampling, odd", [(False, 2, False), (True, 2, False), (False, 0, True),
                                                           (False, 1, True)])
def test_a_jpeg_decodes_to_pillows_pixels_to_the_bit_at_every_dct_scale(tmp_path, photo_2400, monkeypatch, mode,
                                                                       reduce, progressive, subsampling, odd):
    """8-bit RGB and gray JPEGs are decoded by OpenCV (faster than Pillow feeding its decoder from Python); CMYK
    ones by Pillow. Either way the pixels are those of Pillow's own DCT-scaled decode: at every scale, baseline and
    progressive, chroma subsampled 4:2:0, 4:2:2 and not at all, sizes that do not divide by 8."""
    from analyzer import loading

    used = []
    real = loading._jpeg_via_opencv
    monkeypatch.setattr(loading, "_jpeg_via_opencv", lambda *a: used.append(r := real(*a)) or r)
    src = photo_2400[:1789, :2391] if odd else photo_2400
    path = tmp_path / f"p_{mode}.jpg"
    Image.fromarray(src).convert(mode).save(path, "JPEG", quality=90, progressive=progressive,
                                            subsampling=subsampling)
    loaded = read_image(path, reduce=reduce)
    with Image.open(path) as im:
        im.draft("RGB" if mode == "RGB" else mode, tuple(int(np.ceil(s * reduce)) for s in im.size))
        expected = np.asarray(im.convert("RGB") if mode != "L" else im)
    if mode == "L":
        expected = np.repeat(expected[..., None], 3, axis=2)
    assert loaded.pixels.shape == expected.shape
    assert loaded.downscale == pytest.approx(src.shape[1] / expected.shape[1], rel=1e-3)
    np.testing.assert_array_equal(np.rint(loaded.pixels * 255).astype(np.uint8), expected)
    # OpenCV decoded it (not Pillow as a fallback), except CMYK, which it is never given
    assert [u is not None for u in used] == ([] if mode == "CMYK" else [True])


def test_a_tiny_max_pixels_gets_pillows_box_reduction_not_opencvs_resize(tmp_path, photo_2400):
    """Below 1/256 of the photo's pixels the 1/8 decode is still twice the target: Pillow's path box-reduces it
    before the final resize, and the OpenCV path steps aside so the pixels stay those of that path."""
    from analyzer import loading

    path = write_jpeg(tmp_path / "big.jpg", np.ascontiguousarray(np.tile(photo_2400, (2, 2, 1))[:3400, :3400]))
    with Image.open(path) as im, open(path, "rb") as fh:
        assert loading._jpeg_via_opencv(fh, im, 45_000, 1.0) is None
        assert loading._jpeg_via_opencv(fh, im, 200_000, 1.0) is not None
    small = read_image(path, max_pixels=45_000).pixels
    assert small.shape[0] * small.shape[1] <= 45_000
