"""Tests for analyzer.loading: every supported file kind decodes to the source pixels, bad input is one
clear ImageError, huge photos are reduced and decompression bombs are refused from the header."""
from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from analyzer.errors import ImageError, OptionError
from analyzer.loading import (
    MAX_HEADER_PIXELS, MIN_SIDE_PX, as_image_and_scale, as_rgb, load_image, read_image,
)

H, W = 300, 400


def _smooth_noise(rng, h, w, sigma):
    return cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), sigma).astype(np.float64)


def _texture(h: int = H, w: int = W, seed: int = 7) -> np.ndarray:
    """Seeded skin-like float RGB in [0.03, 0.97]: shared brightness texture (smooth noise at two scales,
    a few dark disks) on a skin tone, with slow per-channel colour variation."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    lum = (1.0 + 5.0 * _smooth_noise(rng, h, w, 12)
           + 0.5 * _smooth_noise(rng, h, w, 1.5))
    for _ in range(6):
        cy, cx, r = rng.integers(20, h - 20), rng.integers(20, w - 20), rng.integers(4, 15)
        lum[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] *= 0.7
    tone = np.array([0.72, 0.52, 0.43])
    chroma = 1.0 + np.stack([5.0 * _smooth_noise(rng, h, w, 20)
                             for _ in range(3)], axis=2)
    return np.clip(lum[..., None] * tone * chroma, 0.03, 0.97)


@pytest.fixture(scope="module")
def src() -> np.ndarray:
    return _texture()


@pytest.fixture(scope="module")
def src8(src) -> np.ndarray:
    return np.round(src * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def src16(src) -> np.ndarray:
    return np.round(src * 65535).astype(np.uint16)


def _gray8(src8):
    return np.round(src8.astype(float).mean(axis=2)).astype(np.uint8)


# Each writer saves one file kind into tmp_path and returns (path, expected float RGB, tolerance on the
# mean |error|, tolerance on the 99th percentile |error|, expected bit depth).
def _jpeg(d, s8, s16):
    p = d / "a.jpg"
    Image.fromarray(s8).save(p, quality=95)
    return p, s8 / 255, 0.01, 0.04, 8


def _png8(d, s8, s16):
    p = d / "a.png"
    Image.fromarray(s8).save(p)
    return p, s8 / 255, 1e-7, 1e-6, 8


def _png16(d, s8, s16):
    p = d / "a16.png"
    cv2.imwrite(str(p), s16[..., ::-1])  # OpenCV writes BGR
    return p, s16 / 65535, 1e-7, 1e-6, 16


def _png_gray(d, s8, s16):
    p = d / "g.png"
    g = _gray8(s8)
    Image.fromarray(g).save(p)
    return p, np.repeat(g[..., None] / 255, 3, axis=2), 1e-7, 1e-6, 8


def _png_gray16(d, s8, s16):
    p = d / "g16.png"
    g = s16[..., 1]
    Image.fromarray(g).save(p)  # mode I;16
    return p, np.repeat(g[..., None] / 65535, 3, axis=2), 1e-7, 1e-6, 16


def _png_gray_alpha(d, s8, s16):
    p = d / "ga.png"
    g = _gray8(s8)
    Image.fromarray(np.dstack([g, s8[..., 0]]), mode="LA").save(p)
    return p, np.repeat(g[..., None] / 255, 3, axis=2), 1e-7, 1e-6, 8


def _png_rgba(d, s8, s16):
    p = d / "rgba.png"
    alpha = np.random.default_rng(1).integers(0, 256, s8.shape[:2], dtype=np.uint8)
    Image.fromarray(np.dstack([s8, alpha]), mode="RGBA").save(p)
    return p, s8 / 255, 1e-7, 1e-6, 8  # alpha dropped, colour untouched


def _png_palette(d, s8, s16):
    p = d / "pal.png"
    im = Image.fromarray(s8).quantize(colors=256)
    im.save(p)
    return p, np.asarray(im.convert("RGB")) / 255, 1e-7, 1e-6, 8


def _webp(d, s8, s16):
    p = d / "a.webp"
    Image.fromarray(s8).save(p, quality=95)
    return p, s8 / 255, 0.02, 0.06, 8


def _webp_lossless(d, s8, s16):
    p = d / "ll.webp"
    Image.fromarray(s8).save(p, lossless=True)
    return p, s8 / 255, 1e-7, 1e-6, 8


def _tiff8(d, s8, s16):
    p = d / "a.tif"
    Image.fromarray(s8).save(p)
    return p, s8 / 255, 1e-7, 1e-6, 8


def _tiff16(d, s8, s16):
    p = d / "a16.tif"
    cv2.imwrite(str(p), s16[..., ::-1])
    return p, s16 / 65535, 1e-7, 1e-6, 16


def _heic(d, s8, s16):
    p = d / "a.heic"
    Image.fromarray(s8).save(p, format="HEIF", quality=95)  # analyzer.loading registered the HEIF plugin
    return p, s8 / 255, 0.02, 0.06, 8


WRITERS = [_jpeg, _png8, _png16, _png_gray, _png_gray16, _png_gray_alpha, _png_rgba, _png_palette,
           _webp, _webp_lossless, _tiff8, _tiff16, _heic]


@pytest.mark.parametrize("writer", WRITERS, ids=[w.__name__.strip("_") for w in WRITERS])
def test_every_file_kind_decodes_to_the_source_pixels(tmp_path, src8, src16, writer):
    path, expected, tol_mean, tol_p99, depth = writer(tmp_path, src8, src16)
    loaded = read_image(path)
    rgb = loaded.pixels
    assert rgb.dtype == np.float32 and rgb.shape == (H, W, 3) and rgb.flags.c_contiguous
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    err = np.abs(rgb - expected)
    assert err.mean() <= tol_mean
    assert np.percentile(err, 99) <= tol_p99
    assert loaded.bit_depth == depth
    assert loaded.downscale == 1.0 and loaded.original_size == (W, H)
    np.testing.assert_array_equal(load_image(path), rgb)


def test_sixteen_bit_precision_is_kept(tmp_path, src16):
    # Values that differ by one 16-bit step must stay different (8-bit rounding would merge 256 of them).
    ramp = np.tile(np.arange(W, dtype=np.uint16)[None, :, None] + 30000, (H, 1, 3))
    p = tmp_path / "ramp16.png"
    cv2.imwrite(str(p), ramp)
    rgb = load_image(p)
    assert np.unique(rgb[0, :, 0]).size == W
    np.testing.assert_allclose(rgb[0, :, 0], ramp[0, :, 0] / 65535, atol=1e-7)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_jpeg_is_returned_upright(tmp_path, src8, orientation):
    # A camera held sideways stores rotated pixels plus an Orientation tag that says how to undo it.
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
              8: Image.Transpose.ROTATE_270}[orientation]
    plain = tmp_path / "plain.jpg"
    rotated = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(src8).save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(src8).transpose(stored).save(rotated, quality=95, exif=exif.tobytes())
    twin = read_image(plain)
    got = read_image(rotated)
    assert got.pixels.shape == twin.pixels.shape == (H, W, 3)
    assert got.original_size == (W, H)
    assert np.abs(got.pixels - twin.pixels).mean() < 0.01
    assert np.abs(got.pixels - src8 / 255).mean() < 0.01
    # The stored pixels really are rotated: ignoring the tag would not match.
    raw = np.asarray(Image.open(rotated)) / 255
    assert raw.shape != src8.shape or np.abs(raw - src8 / 255).mean() > 0.05


def _png_bytes(width: int, height: int, raw: bytes | None = None, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG written by hand, so the header can claim anything."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    idat = zlib.compress(raw if raw is not None else b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bad_missing(d, s8):
    return d / "nope.jpg", "check the path"


def _bad_directory(d, s8):
    (d / "folder.jpg").mkdir()
    return d / "folder.jpg", "folder"


def _bad_empty(d, s8):
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg", "copy the photo again"


def _bad_text(d, s8):
    (d / "notes.jpg").write_text("these are my notes, not a photo\n" * 20)
    return d / "notes.jpg", "not an image"


def _bad_random_bytes(d, s8):
    (d / "noise.png").write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return d / "noise.png", "not an image"


def _bad_truncated_jpeg(d, s8):
    Image.fromarray(s8).save(d / "full.jpg", quality=95)
    data = (d / "full.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(data[: len(data) // 2])
    return d / "cut.jpg", "truncated or corrupt"


def _bad_corrupt_png(d, s8):
    Image.fromarray(s8).save(d / "ok.png")
    data = bytearray((d / "ok.png").read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 100: start + 400] = bytes(300)  # wrong data, stale CRC
    (d / "bad.png").write_bytes(bytes(data))
    return d / "bad.png", "truncated or corrupt"


def _bad_truncated_png16(d, s8):
    cv2.imwrite(str(d / "ok16.png"), (s8.astype(np.uint16) * 257)[..., ::-1])
    data = (d / "ok16.png").read_bytes()
    (d / "cut16.png").write_bytes(data[: len(data) * 2 // 3])
    return d / "cut16.png", "truncated or corrupt"


def _bad_tiny(d, s8):
    Image.fromarray(s8[:16, :16]).save(d / "tiny.png")
    return d / "tiny.png", "16×16 px; at least 200×200"


def _bad_thin(d, s8):
    Image.fromarray(s8[:150, :]).save(d / "thin.png")
    return d / "thin.png", "move closer or crop less"


def _bad_gigantic_header(d, s8):
    (d / "bomb.png").write_bytes(_png_bytes(100_000, 100_000))
    return d / "bomb.png", "export a smaller copy"


def _bad_above_ceiling_header(d, s8):
    # Between Pillow's own refusal (2 × its limit) and Relief's ceiling: Relief's check must catch it.
    (d / "big.png").write_bytes(_png_bytes(20_000, 15_000))
    return d / "big.png", "20000×15000 px (300 MP)"


def _bad_huge_16bit_colour(d, s8):
    # Under the pixel ceiling, but 16-bit colour is decoded whole: a 250 MP one took 4 GB of memory.
    (d / "deep.png").write_bytes(_png_bytes(10_001, 10_000, bit_depth=16, colour=6))
    return d / "deep.png", "10001×10000 px (100 MP); PNG photos are decoded whole"


def _bad_whole_decode_bomb(d, s8):
    # A few hundred bytes declaring a blank 8-bit image under the ceiling, in a format without a reduced decode:
    # it would be decoded whole (2.9 GB at 250 MP, between the analysis and the metadata removal).
    (d / "blank.png").write_bytes(_png_bytes(12_000, 10_000))
    return d / "blank.png", "at most 100 MP of them — export a JPEG or a smaller copy"


def _bad_unsupported_format(d, s8):
    Image.fromarray(s8).save(d / "a.bmp")
    return d / "a.bmp", "JPEG, PNG, WebP, TIFF, HEIC"


BAD = [_bad_missing, _bad_directory, _bad_empty, _bad_text, _bad_random_bytes, _bad_truncated_jpeg,
       _bad_corrupt_png, _bad_truncated_png16, _bad_tiny, _bad_thin, _bad_gigantic_header,
       _bad_above_ceiling_header, _bad_huge_16bit_colour, _bad_whole_decode_bomb, _bad_unsupported_format]


@pytest.mark.parametrize("make", BAD, ids=[b.__name__[5:] for b in BAD])
def test_bad_input_is_one_line_image_error_that_says_the_fix(tmp_path, src8, make):
    path, phrase = make(tmp_path, src8)
    t0 = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(path)
    elapsed = time.perf_counter() - t0
    msg = str(info.value)
    assert "\n" not in msg
    assert phrase in msg
    assert "—" in msg  # every message names the fix after the dash
    assert elapsed < 1.0  # bombs are refused from the header, not decoded


def test_gigantic_header_is_refused_without_decoding(tmp_path):
    # 10^10 px of RGB would need 30 GB; the refusal must come from the header, before any allocation.
    import tracemalloc

    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(100_000, 100_000))
    tracemalloc.start()
    with pytest.raises(ImageError, match="more than Relief accepts"):
        read_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    assert 100_000 * 100_000 > MAX_HEADER_PIXELS


def test_truncated_images_stay_errors():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


SAMPLE_JPEG = Path(__file__).resolve().parents[1] / "sample_images" / "week00_baseline.jpg"


def _damaged(how: str) -> bytes:
    data = bytearray(SAMPLE_JPEG.read_bytes())
    start = data.find(b"\xff\xda") + 20  # inside the entropy-coded data
    if how == "bit errors":  # (a bad copy: every 997th byte)
        for i in range(start, len(data), 997):
            data[i] ^= 0x55
    elif how == "zeros":
        data[start + 30_000:start + 34_096] = bytes(4096)
    else:
        data[start + 30_000:start + 34_096] = np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()
    return bytes(data)


@pytest.mark.parametrize("how", ["bit errors", "zeros", "garbage"])
@pytest.mark.parametrize("reduce", [1.0, 0.25])
def test_a_jpeg_with_damaged_data_is_refused_not_measured(tmp_path, how, reduce):
    """libjpeg only warns (on stderr) and fills the rest of the photo with one flat colour: the bad copy of
    week00_baseline.jpg read 42 % rough instead of 5 %, exit 0 (review of bad inputs)."""
    path = tmp_path / "copy.jpg"
    path.write_bytes(_damaged(how))
    with pytest.raises(ImageError, match="copy.jpg is truncated or corrupt — export the photo again"):
        read_image(path, reduce=reduce)


@pytest.mark.parametrize("reduce", [1.0, 0.25])
@pytest.mark.parametrize("colour", [(60, 60, 60), (128, 128, 128), (200, 30, 30), (240, 240, 240)])
def test_a_photo_with_a_captioned_footer_or_padding_is_read_not_refused(tmp_path, colour, reduce):
    """A band a photo really ends in — a clinical camera's caption footer, padding — is never refused (a review
    found flat footers and padding refused by the first version of the check); at worst it is measured with
    DAMAGE_WARNING, which says to ignore it for such a band."""
    from PIL import ImageDraw

    from analyzer import measure
    from analyzer.loading import DAMAGE_WARNING

    src = np.asarray(Image.open(SAMPLE_JPEG).convert("RGB"))
    footer = src.copy()
    footer[-40:] = colour
    im = Image.fromarray(footer)
    ImageDraw.Draw(im).text((10, footer.shape[0] - 30), "Patient 123  2026-01-01  left cheek", fill=(255, 255, 255))
    padded = src.copy()
    padded[-37:] = colour
    for name, img in (("footer", np.asarray(im)), ("padded", padded)):
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(img).save(path, quality=90)
        loaded = read_image(path, reduce=reduce)
        assert loaded.pixels.shape[0] > 0
        if loaded.damaged:  # (a caption can look like the edge of a fill: said, with what to do)
            assert DAMAGE_WARNING in measure(loaded, px_per_mm=16.7).warnings


@pytest.mark.parametrize("bottom", [0, 255, "uniform"])
def test_a_jpeg_ending_in_a_black_or_white_border_or_all_one_colour_is_read(tmp_path, bottom):
    # What the damage check must not take for damage: a clipped border, and a lens cap (no texture, not damage).
    img = np.round(_texture(600, 800, seed=3) * 255).astype(np.uint8)
    if bottom == "uniform":
        img[:] = 150
    else:
        img[-64:] = bottom
    path = tmp_path / "border.jpg"
    Image.fromarray(img).save(path, quality=92)
    assert read_image(path).pixels.shape[:2] == (600, 800)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_large_photo_is_reduced_to_max_pixels(tmp_path, fmt):
    h, w = 900, 1200
    big = np.round(_texture(h, w, seed=11) * 255).astype(np.uint8)
    path = tmp_path / f"big.{fmt}"
    Image.fromarray(big).save(path, **({"quality": 95} if fmt == "jpg" else {"compress_level": 1}))
    max_pixels = 200_000
    loaded = read_image(path, max_pixels=max_pixels)
    hh, ww = loaded.pixels.shape[:2]
    assert hh * ww <= max_pixels
    assert hh * ww > 0.95 * max_pixels  # reduced to fit, not further
    assert loaded.original_size == (w, h)
    assert loaded.downscale == pytest.approx(np.sqrt(h * w / max_pixels), rel=0.01)
    assert loaded.downscale == pytest.approx(w / ww, rel=0.005)
    assert abs(ww / hh - w / h) < 0.01  # aspect kept
    # Area reduction keeps the content: compare with an independent area-averaged reference.
    ref = cv2.resize(big.astype(np.float32) / 255, (ww, hh), interpolation=cv2.INTER_AREA)
    assert np.abs(loaded.pixels - ref).mean() < 0.01


def test_max_pixels_below_the_minimum_photo_is_an_option_error(tmp_path, src8):
    Image.fromarray(src8).save(tmp_path / "a.png")
    with pytest.raises(OptionError):
        read_image(tmp_path / "a.png", max_pixels=100)


def test_as_image_and_scale_reports_the_reduction(tmp_path, src8):
    Image.fromarray(src8).save(tmp_path / "a.png")
    rgb, scale = as_image_and_scale(tmp_path / "a.png")
    assert scale == 1.0 and rgb.shape == (H, W, 3)
    rgb, scale = as_image_and_scale(str(tmp_path / "a.png"))
    assert scale == 1.0
    rgb, scale = as_image_and_scale(src8)
    assert scale == 1.0
    np.testing.assert_allclose(rgb, src8 / 255, atol=1e-6)


# ---- as_rgb: the door for arrays ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda s: s, lambda s: s),
        (lambda s: np.round(s * 255).astype(np.uint8), lambda s: np.round(s * 255) / 255),
        (lambda s: np.round(s * 65535).astype(np.uint16), lambda s: np.round(s * 65535) / 65535),
        (lambda s: s.astype(np.float64), lambda s: s),
        (lambda s: s.astype(np.float16), lambda s: s.astype(np.float16).astype(np.float64)),
        (lambda s: s[..., 1], lambda s: np.repeat(s[..., 1:2], 3, axis=2)),
        (lambda s: s[..., 1:2], lambda s: np.repeat(s[..., 1:2], 3, axis=2)),
        (lambda s: np.dstack([s, np.zeros(s.shape[:2])]), lambda s: s),
        (lambda s: np.asfortranarray(s), lambda s: s),
        (lambda s: s[::-1, ::-1], lambda s: s[::-1, ::-1]),
    ],
    ids=["float32", "uint8", "uint16", "float64", "float16", "gray", "gray1", "rgba", "fortran", "flipped"],
)
def test_as_rgb_normalises_every_accepted_array(src, make, expected):
    s = src.astype(np.float32)
    out = as_rgb(make(s))
    assert out.dtype == np.float32 and out.shape == (H, W, 3) and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected(s), atol=1e-6)


def test_as_rgb_clips_small_overshoot_and_never_modifies_its_input(src):
    a = src.astype(np.float32).copy()
    a[0, 0] = [-0.02, 1.03, 0.5]
    before = a.copy()
    out = as_rgb(a)
    np.testing.assert_array_equal(out[0, 0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(a, before)
    assert not np.shares_memory(out, a)


@pytest.mark.parametrize(
    "bad, phrase",
    [
        (np.full((H, W, 3), np.nan, np.float32), "NaN"),
        (np.full((H, W, 3), np.inf), "NaN or infinite"),
        (np.zeros((2, H, W, 3), np.float32), "shape"),
        (np.zeros((W,), np.float32), "shape"),
        (np.zeros((H, W, 2), np.float32), "shape"),
        (np.zeros((H, W, 5), np.uint8), "shape"),
        (np.zeros((0, W, 3), np.uint8), "empty"),
        (np.zeros((16, 16, 3), np.uint8), "16×16 px"),
        (np.zeros((H, W, 3), bool), "boolean"),
        (np.zeros((H, W, 3), np.int32), "dtype int32"),
        (np.full((H, W, 3), 200.0), "divide 8-bit values by 255"),
        # (centred or normalised data was clipped at 0 and measured several times rougher)
        (np.linspace(-0.45, 0.45, H * W * 3, dtype=np.float32).reshape(H, W, 3), "undo the centring"),
        (np.linspace(-1, 1, H * W * 3).reshape(H, W, 3), "go down to -1"),
        ("photo.jpg", "load_image"),
    ],
    ids=["nan", "inf", "4d", "1d", "2ch", "5ch", "empty", "tiny", "bool", "int32", "float255", "centred",
         "normalised", "path"],
)
def test_as_rgb_rejects_unusable_arrays_with_one_line(bad, phrase):
    with pytest.raises(ImageError) as info:
        as_rgb(bad)
    msg = str(info.value)
    assert phrase in msg and "\n" not in msg and "—" in msg


def test_a_float_array_undershooting_by_a_few_hundredths_is_clipped_not_refused():
    arr = np.full((H, W, 3), 0.5, np.float32)
    arr[0, 0] = -0.05  # (a sharpened or colour-converted photo)
    assert as_rgb(arr)[0, 0, 0] == 0.0


def test_a_named_pipe_is_refused_at_once_not_waited_on(tmp_path):
    # (measure <fifo> blocked in open() until something wrote to it: for ever)
    import os

    from analyzer.loading import read_image

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="is not a regular file .* — pass a saved photo file"):
        read_image(fifo)
    r = subprocess.run([sys.executable, "-m", "analyzer", "measure", str(fifo)], capture_output=True, text=True,
                       timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2 and "is not a regular file" in r.stderr and len(r.stderr.splitlines()) == 1


def test_min_side_is_enforced_at_the_boundary():
    as_rgb(np.zeros((MIN_SIDE_PX, MIN_SIDE_PX), np.uint8))
    with pytest.raises(ImageError):
        as_rgb(np.zeros((MIN_SIDE_PX - 1, 1000), np.uint8))


def test_a_float_tiff_on_a_0_255_scale_gets_advice_for_a_file_not_an_array(tmp_path):
    """The array advice ("divide 8-bit values by 255") means nothing to someone uploading a file."""
    from PIL import Image

    from analyzer.errors import ImageError
    from analyzer.loading import read_image

    path = tmp_path / "scan.tif"
    Image.fromarray((np.random.default_rng(0).random((300, 400)) * 255).astype(np.float32)).save(path)
    with pytest.raises(ImageError, match="export the photo as an 8- or 16-bit image") as err:
        read_image(path)
    assert "divide" not in str(err.value) and "\n" not in str(err.value)
    ok = tmp_path / "ok.tif"
    Image.fromarray(np.random.default_rng(1).random((300, 400)).astype(np.float32)).save(ok)
    assert read_image(ok).pixels.shape == (300, 400, 3)


@pytest.mark.parametrize("make, model, camera", [
    ("Apple", "iPhone 13", "Apple iPhone 13"),
    ("Canon", "Canon EOS R5", "Canon EOS R5"),      # the make is not said twice
    ("", "Pixel 8", "Pixel 8"),
    ("samsung\x00", " SM-S911B\x07 ", "samsung SM-S911B"),  # padding and control characters dropped
    (None, None, None),
])
def test_the_camera_is_read_from_the_exif(tmp_path, make, model, camera):
    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
        exif[0x0110] = model
    path = tmp_path / "c.jpg"
    Image.new("RGB", (320, 240), (180, 120, 100)).save(path, "JPEG", exif=exif)
    assert read_image(path).camera == camera
    png = tmp_path / "c.png"
    Image.new("RGB", (320, 240), (180, 120, 100)).save(png)
    assert read_image(png).camera is None
