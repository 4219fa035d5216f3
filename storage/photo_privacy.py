"""Strip a photo file of everything that identifies a person, a place or a camera, keeping its pixels.

:func:`strip_metadata` is a pure function ``bytes -> bytes`` run on every photo before it is stored. What
stays is what the library's loader (:func:`analyzer.read_image`) uses to measure: the compressed pixels and
the EXIF orientation. Decoded pixels stay bit-identical.

Per format
----------
JPEG
    The marker segments are walked and metadata segments are dropped; the entropy-coded data is copied
    byte for byte (never re-encoded). Kept: SOF/DHT/DQT/DRI/SOS and the scans, APP0 ``JFIF`` (its
    thumbnail, if any, is cut off) and APP14 ``Adobe`` (its colour-transform flag changes how the pixels
    decode). Dropped: APP1 (EXIF: GPS, make/model, serial numbers, owner, maker notes, thumbnail; XMP),
    APP2 (ICC profile, FlashPix, MPF), APP3–APP13 (APP13 = Photoshop/IPTC), APP15, APP0 ``JFXX``
    thumbnails, COM comments, and anything after the first EOI (the extra images and depth maps of
    phones' multi-picture files, each with its own EXIF). An orientation other than 1 is kept as a
    minimal EXIF block holding only the Orientation tag.
PNG
    Chunks are filtered: IHDR, PLTE, tRNS, IDAT and IEND are kept verbatim; everything else (tEXt, zTXt,
    iTXt, eXIf, tIME, iCCP, pHYs, C2PA ``caBX``, ...) is dropped. An orientation the loader honours (an
    eXIf before the image data) is kept as a minimal eXIf.
WebP
    RIFF chunks are filtered: VP8/VP8L/ALPH and the animation header are kept verbatim, each animation frame
    with only its pictures (VP8/VP8L/ALPH; the container allows any chunk inside a frame), EXIF, XMP and ICCP
    dropped (VP8X flags updated); an orientation other than 1 is kept as a minimal EXIF chunk.
TIFF, HEIC/HEIF
    Re-containered as PNG of the pixels the loader decodes (8 or 16 bit per channel kept; EXIF orientation
    applied to the pixels, which is lossless; alpha dropped as the loader drops it). Editing these
    containers in place (TIFF IFDs with their offsets, HEIF item boxes) would keep the original encoding but
    needs a careful rewriter per container; a PNG of the decoded pixels holds no metadata by construction and
    the loader reads the same numbers from it. The price: a PNG is larger than the HEIC it replaces (a 2 MB
    12 MP HEIC becomes about 6 MB, decoded and written at zlib level 1 in about 3.5 s on one core). 32-bit
    float TIFFs have no lossless PNG form and are refused.
Anything else
    Returned unchanged: the loader cannot read it (GIF, BMP, unknown bytes), so the app never saves it
    and the storage keeps what it is given.

Why the ICC profile is dropped: the loader ignores ICC profiles (values are used as stored, sRGB assumed;
see :func:`analyzer.read_image`), so no measurement depends on it, and profiles embedded by cameras and
phones may name the device. Thumbnails in the dashboard are made by Pillow, which does not
colour-manage either, so what a practitioner sees does not change.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from .errors import StorageError

__all__ = ["strip_metadata", "PhotoFormatError", "ORIENTATION_TAG"]

ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


class PhotoFormatError(StorageError, ValueError):
    """A photo file whose structure cannot be parsed, so its metadata cannot be removed."""


def strip_metadata(data: bytes) -> bytes:
    """Return the photo with its metadata removed and its decoded pixels unchanged.

    Parameters
    ----------
    data : bytes
        The uploaded file.

    Returns
    -------
    bytes
        JPEG, PNG or WebP without metadata (orientation kept), a PNG of the pixels for TIFF, HEIC and anything
        else the loader reads, or ``data`` itself when it is not a format the loader reads.

    Raises
    ------
    PhotoFormatError
        A JPEG, PNG, WebP, TIFF or HEIC file too damaged to parse (one line, says the fix).
    """
    data = bytes(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _strip_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        return _strip_png(data)
    from .blobs import sniff_content_type

    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _strip_webp(data)
    if sniff_content_type(data) in ("image/tiff", "image/heic", "image/heif") or _loader_opens(data):
        # (the last: a variant the sniffer does not name, e.g. a new HEIF brand, that the loader still reads)
        return _recontainer_png(data)
    return data


def _loader_opens(data: bytes) -> bool:
    """Whether the photo loader would read ``data`` (Pillow parses its header; nothing is decoded)."""
    from PIL import Image

    from analyzer import loading

    try:
        with Image.open(io.BytesIO(data), formats=loading._PIL_FORMATS):
            return True
    except Exception:
        return False


def _broken(kind: str, why: str) -> PhotoFormatError:
    return PhotoFormatError(
        f"the {kind} file is damaged ({why}); its metadata cannot be removed — export the photo again"
    )


def _orientation(data: bytes) -> int:
    """The EXIF orientation exactly as the loader reads it (1 when none or unreadable)."""
    from PIL import Image

    from analyzer import loading  # registers the HEIF opener; _orientation is the loader's own rule

    try:
        with Image.open(io.BytesIO(data), formats=loading._PIL_FORMATS) as im:
            return loading._orientation(im)
    except Exception:
        return 1


def _tiff_orientation(orientation: int) -> bytes:
    """A little-endian TIFF block with one IFD entry: Orientation (SHORT) = ``orientation``."""
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0) + struct.pack("<I", 0))


# ------------------------------------------------------------------------------------------------ JPEG
#: Segments a decoder needs (kept): DQT, DHT, the SOFn frame headers, DAC, DRI, DNL. (Hierarchical JPEG's DHP
#: and EXP are not kept: libjpeg does not decode such files anyway.)
_DECODE_MARKERS = frozenset({0xDB, 0xC4, 0xCC, 0xDD, 0xDC,
                             *range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
#: Their fixed lengths, where the standard fixes one (DRI, DNL: 4 bytes with the length field).
_FIXED_LENGTH = {0xDD: 4, 0xDC: 4}


def _strip_jpeg(data: bytes) -> bytes:
    orientation = _orientation(data)
    out = [data[:2]]  # SOI
    i, n = 2, len(data)
    exif_written = False
    while True:
        if i >= n:
            raise _broken("JPEG", "it ends before the image data")
        if data[i] != 0xFF:
            raise _broken("JPEG", f"no marker at byte {i}")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise _broken("JPEG", "it ends inside a marker")
        marker = data[i]
        start = i - 1
        i += 1
        if marker == 0xD9:  # EOI: everything after it (MPF secondary images, trailers) is dropped
            out.append(b"\xff\xd9")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            out.append(data[start:i])
            continue
        if i + 2 > n:
            raise _broken("JPEG", "it ends inside a segment header")
        length = struct.unpack(">H", data[i:i + 2])[0]
        end = i + length
        if length < 2 or end > n:
            raise _broken("JPEG", f"segment at byte {start} runs past the end of the file")
        payload = data[i + 2:end]
        segment = b"\xff" + bytes([marker]) + data[i:end]
        i = end
        if marker == 0xE0:  # APP0
            if payload[:5] == b"JFIF\x00" and len(payload) >= 14:
                # Version, units and density only; an embedded thumbnail (x/y thumbnail > 0) is cut off.
                body = payload[:12] + b"\x00\x00"
                out.append(b"\xff\xe0" + struct.pack(">H", len(body) + 2) + body)
        elif marker == 0xE1:  # APP1: EXIF or XMP
            if payload[:6] == b"Exif\x00\x00" and not exif_written:
                exif_written = True
                if orientation != 1:
                    body = b"Exif\x00\x00" + _tiff_orientation(orientation)
                    out.append(b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body)
        elif marker == 0xEE:  # APP14
            if payload[:5] == b"Adobe" and len(payload) >= 12:  # colour transform flag: needed to decode right
                out.append(b"\xff\xee" + struct.pack(">H", 14) + payload[:12])  # its 12 bytes, no padding
        elif 0xE2 <= marker <= 0xEF or marker == 0xFE:  # APP2-APP15, COM
            pass
        elif marker == 0xDA:  # SOS: copy the header, then the entropy-coded data up to the next marker
            out.append(segment)
            j = i
            while True:
                j = data.find(b"\xff", j)
                if j < 0 or j + 1 >= n:  # no EOI: decoders accept a file ending after its last scan
                    out.append(data[i:])
                    return _with_orientation_first(b"".join(out), orientation, exif_written)
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    j += 1 if nxt == 0xFF else 2
                    continue
                break
            out.append(data[i:j])
            i = j
        elif marker in _DECODE_MARKERS and (marker not in _FIXED_LENGTH or length == _FIXED_LENGTH[marker]):
            out.append(segment)  # DQT, DHT, SOFn, DAC, DRI, DNL, DHP, EXP: needed to decode
        # anything else (reserved JPGn markers, a DNL or DRI padded with extra bytes) could carry data a
        # decoder skips: dropped
    return _with_orientation_first(b"".join(out), orientation, exif_written)


def _with_orientation_first(jpeg: bytes, orientation: int, exif_written: bool) -> bytes:
    """Insert the orientation-only EXIF after SOI/APP0 when the original EXIF was not where we met it."""
    if orientation == 1 or exif_written:
        return jpeg
    body = b"Exif\x00\x00" + _tiff_orientation(orientation)
    seg = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + seg + jpeg[pos:]


# ------------------------------------------------------------------------------------------------- PNG
def _strip_png(data: bytes) -> bytes:
    orientation = _orientation(data)
    out = [_PNG_SIGNATURE]
    i, n = len(_PNG_SIGNATURE), len(data)
    exif_written = orientation == 1
    while True:
        if i + 8 > n:
            raise _broken("PNG", "it ends before IEND")
        length, ctype = struct.unpack(">I4s", data[i:i + 8])
        end = i + 12 + length
        if end > n:
            raise _broken("PNG", f"chunk {ctype!r} runs past the end of the file")
        if ctype == b"IDAT" and not exif_written:  # the loader honours an eXIf only before the image data
            body = _tiff_orientation(orientation)
            out.append(struct.pack(">I", len(body)) + b"eXIf" + body
                       + struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF))
            exif_written = True
        if ctype in _PNG_KEEP:
            out.append(data[i:end])
        i = end
        if ctype == b"IEND":
            break
    return b"".join(out)


# ------------------------------------------------------------------------------------------------ WebP
_WEBP_KEEP = {b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"}
_VP8X_ICC, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x08, 0x04


def _strip_webp(data: bytes) -> bytes:
    orientation = _orientation(data)
    riff_end = 8 + struct.unpack("<I", data[4:8])[0]
    if riff_end > len(data) or riff_end < 12:
        raise _broken("WebP", "its RIFF size is wrong")
    chunks = _riff_chunks(data, 12, riff_end, "the file")
    out = []
    for fourcc, chunk in chunks:
        if fourcc == b"VP8X":
            if len(chunk) < 18:  # (its 10 bytes: flags, reserved, canvas size)
                raise _broken("WebP", "its extended header is too short")
            flags = chunk[8] & ~(_VP8X_ICC | _VP8X_XMP | _VP8X_EXIF) | (_VP8X_EXIF if orientation != 1 else 0)
            out.append(chunk[:8] + bytes([flags]) + chunk[9:])
        elif fourcc == b"ANMF":
            out.append(_webp_frame(chunk))
        elif fourcc in _WEBP_KEEP:
            out.append(chunk)
    if orientation != 1:
        if not any(f == b"VP8X" for f, _ in chunks):
            raise _broken("WebP", "it has an orientation but no extended header")
        body = _tiff_orientation(orientation)
        out.append(b"EXIF" + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1))
    payload = b"WEBP" + b"".join(out)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _riff_chunks(data: bytes, start: int, end: int, where: str) -> list[tuple[bytes, bytes]]:
    """The RIFF chunks in ``data[start:end]``: ``(fourcc, header + payload + padding byte)`` each (the padding cut
    where ``end`` comes first); a chunk running past ``end`` is damage in ``where``."""
    chunks, i = [], start
    while i + 8 <= end:
        fourcc, size = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        if i + 8 + size > end:
            raise _broken("WebP", f"chunk {fourcc!r} runs past the end of {where}")
        chunks.append((fourcc, data[i:min(i + 8 + size + (size & 1), end)]))
        i += 8 + size + (size & 1)
    return chunks


_WEBP_FRAME_KEEP = {b"VP8 ", b"VP8L", b"ALPH"}


def _webp_frame(chunk: bytes) -> bytes:
    """An animation frame (ANMF) with only its pictures: the container allows any chunk inside a frame, and one
    kept byte for byte carried whatever was put there (a review hid a location in one)."""
    body = chunk[8:8 + struct.unpack("<I", chunk[4:8])[0]]
    if len(body) < 16:
        raise _broken("WebP", "an animation frame is too short")
    kept = [body[:16]]  # position, size, duration and flags of the frame
    for fourcc, c in _riff_chunks(body, 16, len(body), "its animation frame"):
        if fourcc in _WEBP_FRAME_KEEP:
            kept.append(c + b"\x00" * (len(c) & 1))  # (a frame's last chunk may lack its padding byte)
    payload = b"".join(kept)
    return b"ANMF" + struct.pack("<I", len(payload)) + payload


# ------------------------------------------------------------------------------------- TIFF, HEIC/HEIF
def _recontainer_png(data: bytes) -> bytes:
    """A PNG of the pixels the loader decodes from ``data``, upright, without any metadata."""
    import cv2
    from PIL import Image

    from analyzer import loading

    try:
        with Image.open(io.BytesIO(data), formats=loading._PIL_FORMATS) as im:
            w, h = im.size
            if w * h > loading.MAX_WHOLE_DECODE_PIXELS and not loading.decoded_reduced(im):
                # (checked from the header, as the loader does: a small file may declare a huge blank image)
                raise PhotoFormatError(str(loading.whole_decode_too_large("the photo", im.format, w, h)))
            fh = io.BytesIO(data)
            # The loader's own decoder at full size, so the pixels are by construction the ones it measures.
            arr, _, orientation, _, _ = loading._decode(fh, im, loading.MAX_HEADER_PIXELS)
    except MemoryError:
        raise PhotoFormatError(
            "the photo is too large to decode in the memory available — export a smaller copy"
        ) from None
    except PhotoFormatError:
        raise
    except Exception as err:
        raise _broken("photo", f"{type(err).__name__}") from None
    arr = np.ascontiguousarray(loading._orient(arr, orientation))
    if arr.dtype == np.uint16:
        ok, buf = cv2.imencode(".png", arr if arr.ndim == 2 else arr[..., ::-1],  # RGB -> BGR for OpenCV
                               [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise PhotoFormatError("the 16-bit photo could not be stored losslessly — export it as 16-bit PNG")
        return buf.tobytes()
    if arr.dtype != np.uint8:
        raise PhotoFormatError(
            "32-bit floating-point photos cannot be stored without their metadata — export as 16-bit TIFF or PNG"
        )
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="PNG", compress_level=1)  # level 6 is 3x slower for 25 % less
    return out.getvalue()
