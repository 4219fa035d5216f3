"""Privacy of the stored photos: metadata stripped with pixels unchanged, encryption at rest, deletion on disk.

Each test checks its fixture really holds what must disappear (GPS, serial, thumbnail, the photo's bytes),
so it fails when the protection is missing.
"""
from __future__ import annotations

import base64
import io
import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import MAIN, new_patient
from PIL import ExifTags, Image, PngImagePlugin

from analyzer.loading import read_image
from storage import NewMeasurement, NewPhoto, StorageError, open_store
from storage.blobs import KEY_ENV, BlobStore, PhotoKeyError, parse_key, sha256_hex
from storage.photo_privacy import PhotoFormatError, strip_metadata

KEY = bytes(range(32)).hex()
OTHER_KEY = base64.urlsafe_b64encode(bytes(range(100, 132))).decode().rstrip("=")
SERIAL = b"SN-7Q4-0099182734"
MAKE = "RELIEF-TEST-CAMERA-MAKER"
OWNER = "Dr. Owner Name Example"
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- fixtures
def noise(seed: int, h: int = 240, w: int = 320, dtype=np.uint8) -> np.ndarray:
    hi = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, hi, (h, w, 3), dtype=dtype)


def thumbnail_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(99, 16, 16)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _with_ifd1_thumbnail(tiff: bytes, thumb: bytes) -> bytes:
    """Pillow writes no IFD1; append one holding a JPEG thumbnail (as cameras and phones do)."""
    e = {b"II": "<", b"MM": ">"}[tiff[:2]]
    ifd0 = struct.unpack(e + "I", tiff[4:8])[0]
    n = struct.unpack(e + "H", tiff[ifd0:ifd0 + 2])[0]
    next_at = ifd0 + 2 + 12 * n
    ifd1 = len(tiff)
    thumb_at = ifd1 + 2 + 2 * 12 + 4
    ifd1_bytes = (struct.pack(e + "H", 2) + struct.pack(e + "HHII", 0x0201, 4, 1, thumb_at)
                  + struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb)) + struct.pack(e + "I", 0))
    return tiff[:next_at] + struct.pack(e + "I", ifd1) + tiff[next_at + 4:] + ifd1_bytes + thumb


def exif_with_everything(orientation: int = 6) -> bytes:
    """EXIF with GPS, make/model, serial numbers, owner, a maker note, a thumbnail and the orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Model] = "Model-X"
    exif[ExifTags.Base.Artist] = OWNER
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.BodySerialNumber] = SERIAL.decode()
    sub[ExifTags.Base.CameraOwnerName] = OWNER
    sub[ExifTags.Base.MakerNote] = b"MAKERNOTE" + SERIAL
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 7.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 41.25)
    raw = exif.tobytes()
    assert raw[:6] == b"Exif\x00\x00"
    return raw[:6] + _with_ifd1_thumbnail(raw[6:], thumbnail_jpeg())


def app_segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_metadata(seed: int = 1, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(seed)).save(buf, "JPEG", quality=92, exif=exif_with_everything(6),
                                      comment=b"COMMENT " + SERIAL, icc_profile=b"ICCPROFILE" + SERIAL, **options)
    data = buf.getvalue()
    xmp = app_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + OWNER.encode() + b"</x:xmpmeta>")
    iptc = app_segment(0xED, b"Photoshop 3.0\x00" + b"8BIM IPTC " + OWNER.encode())
    trailer = b"\xff\xd8\xff\xe1" + b"SECOND-IMAGE " + SERIAL  # a phone's multi-picture tail after EOI
    return data[:2] + xmp + iptc + data[2:] + trailer


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def png_with_text(arr: np.ndarray) -> bytes:
    """A PNG (8- or 16-bit) with tEXt, zTXt, iTXt, tIME and an eXIf holding GPS and the serial."""
    if arr.dtype == np.uint16:
        data = cv2.imencode(".png", arr[..., ::-1])[1].tobytes()
    else:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        data = buf.getvalue()
    end_ihdr = 8 + 12 + 13
    extra = (png_chunk(b"tEXt", b"Author\x00" + OWNER.encode())
             + png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(SERIAL))
             + png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x>" + OWNER.encode() + b"</x>")
             + png_chunk(b"tIME", struct.pack(">HBBBBB", 2026, 1, 5, 9, 30, 0))
             + png_chunk(b"eXIf", exif_with_everything(1)[6:]))
    return data[:end_ihdr] + extra + data[end_ihdr:]


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in all_files(root) if needle in p.read_bytes()]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("RELIEF_DATABASE_URL", raising=False)  # SQLite in the data folder: searched below
    return tmp_path / "data"


# ------------------------------------------------------------------------------- metadata stripping
def test_jpeg_is_stored_without_gps_serial_or_thumbnail_and_with_identical_pixels(data_dir):
    original = jpeg_with_metadata()
    im0 = Image.open(io.BytesIO(original))
    exif0 = im0.getexif()
    # the fixture holds all of it, so the test can fail
    assert exif0.get_ifd(ExifTags.IFD.GPSInfo) and exif0.get(ExifTags.Base.Make) == MAKE
    assert exif0.get_ifd(ExifTags.IFD.IFD1).get(0x0201) and thumbnail_jpeg() in original
    assert SERIAL in original and OWNER.encode() in original and "icc_profile" in im0.info

    with open_store(data_dir) as store:
        pid = new_patient(store, "GPS").id
        photo = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(original, "IMG_0001.JPG", "chin")]).photos[0]
        stored = store.photo_bytes(MAIN, pid, photo.id)
        assert (photo.width, photo.height) == (240, 320)  # orientation 6: upright is portrait

    assert SERIAL not in stored and OWNER.encode() not in stored and MAKE.encode() not in stored
    assert thumbnail_jpeg() not in stored and b"ICCPROFILE" not in stored and b"xmpmeta" not in stored
    im1 = Image.open(io.BytesIO(stored))
    exif1 = im1.getexif()
    assert dict(exif1) == {ExifTags.Base.Orientation: 6}  # orientation only
    assert not exif1.get_ifd(ExifTags.IFD.GPSInfo) and not exif1.get_ifd(ExifTags.IFD.IFD1)
    assert "icc_profile" not in im1.info and "comment" not in im1.info
    assert stored.endswith(b"\xff\xd9")  # nothing after the image
    # decoded pixels: identical raw, identical after orientation (OpenCV applies EXIF), identical to the loader
    assert np.array_equal(np.asarray(im0), np.asarray(im1))
    cv0 = cv2.imdecode(np.frombuffer(original, np.uint8), cv2.IMREAD_COLOR)
    cv1 = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
    assert cv0.shape == (320, 240, 3) and np.array_equal(cv0, cv1)


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_blocks": 4},
                                     {"progressive": True, "restart_marker_rows": 1}],
                         ids=["baseline", "progressive", "restart-markers", "progressive-restart"])
def test_loader_reads_the_same_pixels_from_the_stripped_jpeg(tmp_path, options):
    original = jpeg_with_metadata(seed=2, **options)
    stored = strip_metadata(original)
    assert SERIAL not in stored and len(stored) < len(original)
    (tmp_path / "a.jpg").write_bytes(original)
    (tmp_path / "b.jpg").write_bytes(stored)
    a, b = read_image(tmp_path / "a.jpg"), read_image(tmp_path / "b.jpg")
    assert a.original_size == b.original_size == (240, 320)
    assert np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8-bit", "16-bit"])
def test_png_text_chunks_are_dropped_and_pixels_kept(data_dir, dtype):
    arr = noise(3, dtype=dtype)
    original = png_with_text(arr)
    assert zlib.compress(SERIAL) in original and OWNER.encode() in original

    with open_store(data_dir) as store:
        pid = new_patient(store, "PNG").id
        photo = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(original, "a.png", "chin")]).photos[0]
        stored = store.photo_bytes(MAIN, pid, photo.id)

    chunks = []
    i = 8
    while i < len(stored):
        n, ctype = struct.unpack(">I4s", stored[i:i + 8])
        chunks.append(ctype)
        i += 12 + n
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    assert OWNER.encode() not in stored and b"GPS" not in stored
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    assert np.array_equal(cv2.imdecode(np.frombuffer(stored, np.uint8), flags),
                          cv2.imdecode(np.frombuffer(original, np.uint8), flags))
    assert np.array_equal(cv2.imdecode(np.frombuffer(stored, np.uint8), flags)[..., ::-1], arr)


def test_png_orientation_the_loader_honours_is_kept(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", OWNER)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    exif[ExifTags.Base.Make] = MAKE
    Image.fromarray(noise(4)).save(buf, "PNG", pnginfo=info, exif=exif)
    original = buf.getvalue()
    stored = strip_metadata(original)
    assert MAKE.encode() not in stored and OWNER.encode() not in stored
    (tmp_path / "a.png").write_bytes(original)
    (tmp_path / "b.png").write_bytes(stored)
    a, b = read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")
    assert a.original_size == b.original_size == (240, 320)
    assert np.array_equal(a.pixels, b.pixels)


def _webp(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "WEBP", quality=80, exif=exif_with_everything(6))
    return buf.getvalue()


def _tiff8(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "TIFF", exif=exif_with_everything(1), description=OWNER)
    return buf.getvalue()


def _tiff16(arr):
    arr16 = arr.astype(np.uint16) * 257 + 3
    ok, buf = cv2.imencode(".tiff", arr16[..., ::-1])
    # OpenCV writes no identifying tags; bytes after the image data (which some writers leave) stand for them
    return buf.tobytes() + OWNER.encode() + SERIAL


def _heic(arr):
    import analyzer.loading  # noqa: F401  (registers the HEIF plugin with Pillow)

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "HEIF", quality=80, exif=exif_with_everything(6))
    return buf.getvalue()


@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_webp_keeps_its_encoding_without_metadata(tmp_path, lossless):
    buf = io.BytesIO()
    Image.fromarray(noise(5)).save(buf, "WEBP", quality=80, lossless=lossless, exif=exif_with_everything(6),
                                   icc_profile=b"ICCPROFILE" + SERIAL, xmp=b"<x:xmpmeta>" + OWNER.encode())
    original = buf.getvalue()
    assert SERIAL in original and OWNER.encode() in original
    stored = strip_metadata(original)
    assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP" and len(stored) < len(original)
    assert SERIAL not in stored and OWNER.encode() not in stored and MAKE.encode() not in stored
    assert struct.unpack("<I", stored[4:8])[0] == len(stored) - 8
    im = Image.open(io.BytesIO(stored))
    assert dict(im.getexif()) == {ExifTags.Base.Orientation: 6} and "icc_profile" not in im.info
    (tmp_path / "a.webp").write_bytes(original)
    (tmp_path / "b.webp").write_bytes(stored)
    a, b = read_image(tmp_path / "a.webp"), read_image(tmp_path / "b.webp")
    assert a.original_size == b.original_size == (240, 320)
    assert np.array_equal(a.pixels, b.pixels)


def test_an_animated_webp_keeps_only_pictures_inside_its_frames(tmp_path):
    """The WebP container allows any chunk inside an animation frame (ANMF); frames were kept byte for byte, and a
    review hid a location and an owner in one that the storage then kept."""
    frames = [Image.fromarray(noise(k)) for k in (7, 8)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    d = bytearray(buf.getvalue())
    i = d.find(b"ANMF")
    size = struct.unpack("<I", d[i + 4:i + 8])[0]
    secret = OWNER.encode() + b" GPS 48.8584N"
    nested = b"ZZZZ" + struct.pack("<I", len(secret)) + secret + b"\x00" * (len(secret) & 1)
    end = i + 8 + size + (size & 1)
    d[end:end] = nested
    struct.pack_into("<I", d, i + 4, size + len(nested))
    struct.pack_into("<I", d, 4, len(d) - 8)
    original = bytes(d)
    assert Image.open(io.BytesIO(original)).n_frames == 2 and secret in original
    stored = strip_metadata(original)
    assert secret not in stored and struct.unpack("<I", stored[4:8])[0] == len(stored) - 8
    (tmp_path / "a.webp").write_bytes(original)
    (tmp_path / "b.webp").write_bytes(stored)
    assert np.array_equal(read_image(tmp_path / "a.webp").pixels, read_image(tmp_path / "b.webp").pixels)
    assert Image.open(io.BytesIO(stored)).n_frames == 2


def _heic_brand(brand: bytes):
    # HEIF files carry one of several brands; the loader (pillow-heif) reads e.g. "hevm" and "hevs" too, and a
    # photo it reads must not be stored with its metadata because the content sniffer did not know the brand.
    def make(arr):
        data = _heic(arr)
        assert data[4:8] == b"ftyp"
        return data[:8] + brand + data[12:]
    return make


def _bigtiff(arr):
    # A TIFF variant the content sniffer does not name ("II+"): stripped because the loader reads it.
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "TIFF", big_tiff=True, exif=exif_with_everything(1), description=OWNER)
    data = buf.getvalue()
    assert data[:4] == b"II+\x00"
    return data


def test_a_small_tiff_declaring_a_huge_image_is_refused_before_decoding():
    """A few kB of TIFF can declare a blank image of 100+ MP, which metadata removal decoded whole (a security
    review: 2.9 GB of memory for a 250 MP one). It is refused from the header, as the loader refuses it."""
    import tracemalloc

    buf = io.BytesIO()
    Image.new("1", (11_000, 10_000)).save(buf, format="TIFF", compression="group4")  # 110 MP in a few kB
    data = buf.getvalue()
    assert len(data) < 100_000
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(PhotoFormatError, match="110 MP.*decoded whole.*export a JPEG or a smaller copy"):
        strip_metadata(data)
    elapsed, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 5_000_000


def test_the_upload_preview_refuses_what_the_loader_refuses():
    """Every upload gets a preview, refused files too: a small TIFF declaring 225 MP took 1 GB there (a review)."""
    from relief_app import images

    buf = io.BytesIO()
    Image.new("1", (15_000, 15_000)).save(buf, format="TIFF", compression="group4")
    t0 = time.perf_counter()
    assert images.thumbnail(buf.getvalue(), max_side=480) is None
    assert time.perf_counter() - t0 < 1.0
    small = io.BytesIO()
    Image.new("RGB", (900, 600), (200, 150, 120)).save(small, format="TIFF")
    assert images.thumbnail(small.getvalue(), max_side=480).shape == (320, 480, 3)


@pytest.mark.parametrize("make", [_tiff8, _tiff16, _bigtiff, _heic, _heic_brand(b"hevm"), _heic_brand(b"hevs"),
                                  _heic_brand(b"mif1")],
                         ids=["tiff-8bit", "tiff-16bit", "bigtiff", "heic", "heif-hevm", "heif-hevs", "heif-mif1"])
def test_tiff_and_heic_become_png_of_the_same_pixels(tmp_path, make):
    original = make(noise(5))
    assert SERIAL in original or OWNER.encode() in original
    stored = strip_metadata(original)
    assert stored.startswith(b"\x89PNG\r\n\x1a\n")
    assert SERIAL not in stored and OWNER.encode() not in stored and MAKE.encode() not in stored
    (tmp_path / "a").write_bytes(original)
    (tmp_path / "b.png").write_bytes(stored)
    a, b = read_image(tmp_path / "a"), read_image(tmp_path / "b.png")
    assert (a.original_size, a.bit_depth) == (b.original_size, b.bit_depth)
    assert np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize("make", [jpeg_with_metadata, lambda: png_with_text(noise(6)), lambda: _webp(noise(6))],
                         ids=["jpeg", "png", "webp"])
def test_stripping_twice_changes_nothing_so_hashes_are_stable(make):
    once = strip_metadata(make())
    assert strip_metadata(once) == once


def test_a_clean_photo_is_stored_byte_for_byte():
    data = (REPO / "sample_images" / "week00_baseline.jpg").read_bytes()  # JFIF only: nothing to remove
    assert strip_metadata(data) == data
    assert strip_metadata(b"not a photo at all") == b"not a photo at all"  # the loader cannot read it either


@pytest.mark.parametrize("damage", [
    lambda d: d[:3],                                   # ends inside a marker
    lambda d: d[:2] + b"\xff\xe1\xff\xff" + d[6:40],    # segment longer than the file
    lambda d: d[:d.rfind(b"\xff\xdb")] + b"\x00" + d[d.rfind(b"\xff\xdb") + 1:],  # no marker where one must be
])
def test_a_damaged_jpeg_is_refused_in_one_line_and_nothing_is_saved(data_dir, damage):
    bad = damage(jpeg_with_metadata())
    with open_store(data_dir) as store:
        pid = new_patient(store, "Bad").id
        with pytest.raises(PhotoFormatError) as err:
            store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(bad, "broken.jpg", "chin")])
        assert store.visits(MAIN, pid) == []
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("broken.jpg: ") and "export the photo again" in msg
    assert isinstance(err.value, StorageError)
    assert [p for p in all_files(data_dir / "photos") if not p.name.startswith(".")] == []


def test_a_damaged_webp_is_refused_in_one_line_not_with_an_index_error():
    # an extended header of size 0 raised IndexError (a review); a frame cut short inside is damaged too
    frames = [Image.fromarray(noise(k)) for k in (11, 12)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    good = buf.getvalue()
    empty_vp8x = good[12:16] + struct.pack("<I", 0) + good[30:]
    bad = [b"RIFF" + struct.pack("<I", len(empty_vp8x) + 4) + b"WEBP" + empty_vp8x]
    i = good.find(b"ANMF")
    short = bytearray(good)
    struct.pack_into("<I", short, i + 4, 10)  # a frame too short for its own header
    bad.append(bytes(short))
    for data in bad:
        with pytest.raises(PhotoFormatError, match="WebP file is damaged"):
            strip_metadata(data)


# ----------------------------------------------------------------------------------------- encryption
def _distinctive_slices(data: bytes) -> list[bytes]:
    """Pieces of a photo that occur nowhere by chance: three 48-byte slices of its compressed data."""
    n = len(data)
    return [data[k * n // 4: k * n // 4 + 48] for k in (1, 2, 3)]


def test_encrypted_files_hold_neither_the_photo_nor_its_hash(data_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    original = jpeg_with_metadata()
    plain = strip_metadata(original)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Enc").id
        v = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(original, "a.jpg", "chin")])
        other = new_patient(store, "Enc 2").id  # (the same photo at a second visit of one patient is refused)
        store.save_visit(MAIN, other, date="2026-02-05", photos=[NewPhoto(original, "again.jpg", "chin")])
        photo = v.photos[0]
        assert store.photo_bytes(MAIN, pid, photo.id) == plain  # decrypted and verified
        with pytest.raises(StorageError, match="encrypted"):
            store.photo_path(MAIN, pid, photo.id)
    photos = [p for p in all_files(data_dir / "photos") if not p.name.startswith(".")]
    assert len(photos) == 1  # the same photo twice is stored once (dedup by the HMAC name)
    blob = photos[0].read_bytes()
    assert b"\xff\xd8\xff" not in blob and b"JFIF" not in blob
    for piece in _distinctive_slices(plain) + _distinctive_slices(original):
        assert files_containing(data_dir / "photos", piece) == []
    assert photo.sha256 not in photos[0].name and sha256_hex(original) not in photos[0].name


def test_without_encryption_the_same_search_finds_the_photo(data_dir):
    # the counterpart of the test above: the search does find an unencrypted photo
    plain = strip_metadata(jpeg_with_metadata())
    with open_store(data_dir) as store:
        pid = new_patient(store, "Plain").id
        store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(plain, "a.jpg", "chin")])
    assert all(files_containing(data_dir / "photos", piece) for piece in _distinctive_slices(plain))


def test_a_wrong_or_missing_key_cannot_read_the_photos_but_the_measurements_remain(data_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Keys").id
        photo = store.save_visit(MAIN, pid, date="2026-01-05", photos=[
            NewPhoto(jpeg_with_metadata(), "a.jpg", "chin",
                     measurement=NewMeasurement("v1", roughness_index=4.2, metrics={"roughness_index": 4.2}))
        ]).photos[0]
    for key, words in [(OTHER_KEY, "wrong key"), (None, "is not set")]:
        if key is None:
            monkeypatch.delenv(KEY_ENV)
        else:
            monkeypatch.setenv(KEY_ENV, key)
        with open_store(data_dir) as store:
            with pytest.raises(PhotoKeyError, match=words) as err:
                store.photo_bytes(MAIN, pid, photo.id)
            assert "\n" not in str(err.value) and KEY_ENV in str(err.value)
            with pytest.raises(PhotoKeyError, match=words):  # nor add photos under another (or no) key
                store.save_visit(MAIN, pid, date="2026-02-05", photos=[NewPhoto(b"\x89PNG\r\n\x1a\n", "b.png", "chin")])
            with pytest.raises(PhotoKeyError):
                store.gc_orphans(grace_s=0)
            assert store.progress(MAIN, pid, "chin", algorithm_version="v1")[0].roughness_index == 4.2
    # BlobStore alone, explicit keys: the right one reads, another one does not
    right = BlobStore(data_dir / "photos", key=KEY)
    assert right.read(photo.sha256, photo.content_type)[:3] == b"\xff\xd8\xff"
    with pytest.raises(PhotoKeyError, match="wrong key"):
        BlobStore(data_dir / "photos", key=OTHER_KEY).read(photo.sha256, photo.content_type)


def test_a_tampered_or_swapped_encrypted_file_is_detected(data_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Tamper").id
        v = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(jpeg_with_metadata(1), "a.jpg", "chin"),
                                                            NewPhoto(jpeg_with_metadata(2), "b.jpg", "forehead")])
        a, b = v.photos
        path_a, path_b = (store.blobs.path(p.sha256, p.content_type) for p in (a, b))
        blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
        path_a.write_bytes(blob_b)  # another photo's (valid) ciphertext under this name
        with pytest.raises(StorageError, match="corrupt"):
            store.photo_bytes(MAIN, pid, a.id)
        flipped = bytearray(blob_a)
        flipped[len(flipped) // 2] ^= 1
        path_a.write_bytes(bytes(flipped))
        with pytest.raises(StorageError, match="corrupt"):
            store.photo_bytes(MAIN, pid, a.id)
        assert store.photo_bytes(MAIN, pid, b.id)[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize("text", [
    bytes(range(32)).hex(),
    bytes(range(32)).hex().upper(),
    base64.urlsafe_b64encode(bytes(range(200, 232))).decode(),
    base64.urlsafe_b64encode(bytes(range(200, 232))).decode().rstrip("="),
    base64.b64encode(bytes(range(200, 232))).decode(),
])
def test_key_text_forms_are_accepted(text):
    assert len(parse_key(text)) == 32


@pytest.mark.parametrize("text", ["hunter2", "ab" * 31, "ab" * 33, base64.urlsafe_b64encode(b"x" * 16).decode(),
                                  "!" * 43, "zz" * 32])
def test_a_malformed_key_is_refused_in_one_line(data_dir, monkeypatch, text):
    monkeypatch.setenv(KEY_ENV, text)
    with pytest.raises(StorageError) as err:
        open_store(data_dir)
    msg = str(err.value)
    assert "\n" not in msg and KEY_ENV in msg and "32-byte" in msg and text not in msg


def test_orphans_of_an_encrypted_store_are_collected_and_referenced_files_kept(data_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        pid = new_patient(store, "GC").id
        store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(jpeg_with_metadata(1), "a.jpg", "chin")])
        orphan = store.blobs.put(jpeg_with_metadata(2))[2]  # a write whose rows never came
        assert store.gc_orphans(grace_s=0) == [orphan]
        assert len([p for p in all_files(data_dir / "photos") if not p.name.startswith(".")]) == 1


# -------------------------------------------------------------------------------------------- deletion
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_deleting_a_patient_leaves_no_copy_of_their_photo_in_the_data_folder(data_dir, monkeypatch, key):
    if key:
        monkeypatch.setenv(KEY_ENV, key)
    original = jpeg_with_metadata(7)
    plain = strip_metadata(original)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Delete Me").id
        keep = new_patient(store, "Keep Me").id
        store.save_visit(MAIN, keep, date="2026-01-05", photos=[NewPhoto(jpeg_with_metadata(8), "k.jpg", "chin")])
        v1 = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(original, "a.jpg", "chin")])
        v2 = store.save_visit(MAIN, pid, date="2026-03-05", photos=[NewPhoto(jpeg_with_metadata(9), "b.jpg", "chin")])
        b, f = v1.photos[0], v2.photos[0]
        # derivatives the store keeps: a measurement and a comparison (numbers in the database)
        store.save_measurement(MAIN, pid, b.id, "v1", roughness_index=4.0, metrics={"roughness_index": 4.0})
        store.save_comparison(MAIN, pid, b.id, f.id, "v1", change_pct=-10.0, ci_low=-15.0, ci_high=-5.0,
                              mdc_pct=3.0, significant=True)
        own = {store.blobs.path(p.sha256, p.content_type) for p in (b, f)}
        assert all(p.is_file() for p in own)
        if not key:
            assert files_containing(data_dir, _distinctive_slices(plain)[1])  # the search can find it
        # the database holds hashes and numbers, never the photo: photos are files, not blobs
        db_files = [p for p in all_files(data_dir) if p.name.startswith("relief.db")]
        assert db_files and not any(piece in p.read_bytes() for p in db_files for piece in _distinctive_slices(plain))

        store.delete_patient(MAIN, pid)

        assert not any(p.exists() for p in own)
        remaining = [p for p in all_files(data_dir / "photos") if not p.name.startswith(".")]
        assert len(remaining) == 1  # the other patient's photo only
    for piece in _distinctive_slices(plain) + _distinctive_slices(original):
        assert files_containing(data_dir, piece) == []  # every file, the SQLite database included


def test_a_deleted_patients_name_and_notes_are_gone_from_the_database_files_while_the_server_runs(data_dir):
    """The write-ahead log kept a deleted patient's name and notes for as long as the server ran (it is reused,
    never emptied, and goes into backups of the data folder). Now a deletion checkpoints and empties it, and
    secure_delete zeroes the freed pages; the store stays open, as the dashboard's does."""
    with open_store(data_dir) as store:
        pid = new_patient(store, "Zelda Uniquename", notes="secret note XYZZY").id
        new_patient(store, "Keep Me")
        store.delete_patient(MAIN, pid)
        new_patient(store, "Written after")  # the server goes on writing
        for piece in (b"Zelda Uniquename", b"secret note XYZZY"):
            assert files_containing(data_dir, piece) == []


def test_the_database_and_the_photo_folders_are_the_owners_only(data_dir):
    """With the usual umask the database (names, birth dates, notes, the audit log) was readable by every local
    user (0644), and so were the folders (0755)."""
    old = os.umask(0o022)
    try:
        with open_store(data_dir) as store:
            pid = new_patient(store, "Perms").id
            store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(jpeg_with_metadata(3), "a.jpg", "chin")])
            files = [p for p in all_files(data_dir)]
            assert any(p.name == "relief.db-wal" for p in files)
            for p in files:
                assert p.stat().st_mode & 0o077 == 0, (p, oct(p.stat().st_mode))
            for d in {data_dir, *(p.parent for p in files)}:
                assert d.stat().st_mode & 0o077 == 0, (d, oct(d.stat().st_mode))
    finally:
        os.umask(old)


def test_deleting_a_visit_removes_its_photo_file_and_keeps_the_others(data_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Visit").id
        v1 = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(jpeg_with_metadata(11), "a.jpg", "chin")])
        v2 = store.save_visit(MAIN, pid, date="2026-02-05", photos=[NewPhoto(jpeg_with_metadata(12), "b.jpg", "chin")])
        gone = store.blobs.path(v2.photos[0].sha256, v2.photos[0].content_type)
        kept = store.blobs.path(v1.photos[0].sha256, v1.photos[0].content_type)
        store.delete_visit(MAIN, pid, v2.id)
        assert not gone.exists() and kept.is_file()
        assert store.photo_bytes(MAIN, pid, v1.photos[0].id)[:3] == b"\xff\xd8\xff"


def test_a_photo_written_before_the_key_was_set_is_still_read_and_deleted(data_dir, monkeypatch):
    original = jpeg_with_metadata(13)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Legacy").id
        photo = store.save_visit(MAIN, pid, date="2026-01-05", photos=[NewPhoto(original, "a.jpg", "chin")]).photos[0]
        legacy = store.photo_path(MAIN, pid, photo.id)
    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        assert store.photo_bytes(MAIN, pid, photo.id) == strip_metadata(original)
        store.delete_patient(MAIN, pid)
    assert not legacy.exists()


def test_compare_works_on_encrypted_photos(data_dir, monkeypatch):
    from relief_app import visits

    monkeypatch.setenv(KEY_ENV, KEY)
    with open_store(data_dir) as store:
        pid = new_patient(store, "Compare").id
        ids = [store.save_visit(MAIN, pid, date=f"2026-0{k + 1}-05", photos=[
            NewPhoto((REPO / "sample_images" / name).read_bytes(), name, "left cheek")]).photos[0].id
            for k, name in enumerate(["week00_baseline.jpg", "week01.jpg"])]
        with pytest.raises(StorageError, match="encrypted"):
            store.photo_path(MAIN, pid, ids[0])  # the old way cannot work on ciphertext
        c = visits.run_compare(store, MAIN, pid, *ids)
    assert np.isfinite(c.change_pct)


def test_photos_a_killed_analysis_left_in_a_temporary_folder_are_swept(tmp_path):
    """The library reads a photo from a private temporary folder (decrypted, or an upload still holding its GPS
    position), removed on return; a process killed meanwhile left it. The dashboard sweeps such folders when it
    starts (older than an hour: an analysis may be running in another process)."""
    from relief_app import visits

    old_upload, old_compare, fresh, other = (tmp_path / n for n in (
        "relief-upload-abc", "relief-compare-def", "relief-upload-new", "relief-export-xyz"))
    for d in (old_upload, old_compare, fresh, other):
        d.mkdir()
        (d / "photo.jpg").write_bytes(b"\xff\xd8 decrypted photo")
    for d in (old_upload, old_compare, other):
        os.utime(d, (1_000_000_000, 1_000_000_000))
    assert sorted(visits.sweep_temporary(root=tmp_path)) == sorted([old_upload, old_compare])
    assert fresh.exists() and other.exists() and not old_upload.exists() and not old_compare.exists()


def test_jpeg_segments_no_decoder_needs_are_dropped_whatever_their_marker():
    """Only the segments a decoder needs are kept: a reserved JPGn marker (0xF0) or a DNL padded past its 4 bytes
    could carry text that decoders skip (the stripper used to keep every marker it did not know)."""
    clean = io.BytesIO()
    Image.fromarray(noise(5)).save(clean, "JPEG", quality=92)
    data = clean.getvalue()
    sos = data.index(b"\xff\xda")
    hidden = app_segment(0xF0, b"GPS 48.8584N 2.2945E " + SERIAL) + app_segment(0xDC, b"\x00\x10" + OWNER.encode())
    stripped = strip_metadata(data[:sos] + hidden + data[sos:])
    assert SERIAL not in stripped and OWNER.encode() not in stripped and b"GPS" not in stripped
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stripped))), np.asarray(Image.open(io.BytesIO(data))))


def test_a_data_folder_from_before_the_permission_rule_is_made_private_when_opened(data_dir):
    data_dir.mkdir(mode=0o755)
    (data_dir / "photos").mkdir(mode=0o755)
    with open_store(data_dir) as store:
        new_patient(store, "Old install")
    for p in (data_dir / "relief.db", data_dir / "relief.db-wal"):
        if p.exists():
            os.chmod(p, 0o644)
    os.chmod(data_dir, 0o755)
    with open_store(data_dir) as store:
        new_patient(store, "Opened again")
        for p in [data_dir, data_dir / "photos", *data_dir.glob("relief.db*")]:
            assert p.stat().st_mode & 0o077 == 0, (p, oct(p.stat().st_mode))


def test_a_deletion_while_another_connection_reads_does_not_hang_and_the_log_is_emptied_later(data_dir):
    """A reader in the middle of a transaction keeps SQLite from emptying its log: the checkpoint used to wait
    the full 30 s busy timeout inside the deletion and then give up, leaving the deleted name in the log."""
    import sqlite3

    with open_store(data_dir) as store:
        pid = new_patient(store, "ZZSECRETNAMEQQ").id
        reader = sqlite3.connect(data_dir / "relief.db")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM patients").fetchall()
        t = time.perf_counter()
        store.delete_patient(MAIN, pid)
        assert time.perf_counter() - t < 5.0
        reader.rollback()
        reader.close()
        store._patients._forget(retries=0)  # what the background retry runs
        assert files_containing(data_dir, b"ZZSECRETNAMEQQ") == []


def test_a_padded_adobe_segment_keeps_its_12_bytes_only():
    clean = io.BytesIO()
    Image.fromarray(noise(6)).save(clean, "JPEG", quality=92)
    data = clean.getvalue()
    adobe = app_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01" + b"GPS 51.5N 0.1W " + SERIAL)
    stripped = strip_metadata(data[:2] + adobe + data[2:])
    assert SERIAL not in stripped and b"GPS" not in stripped
    assert b"\xff\xee\x00\x0eAdobe" in stripped
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stripped))), np.asarray(Image.open(io.BytesIO(data))))
