"""Load photos and normalise arrays into Relief's one image form.

Every image handed between Relief's modules is a ``float32`` array of shape ``(H, W, 3)``, RGB order,
values in ``[0, 1]``, sRGB-encoded exactly as stored in the file (no colour management). This module is
the door to that form:

* :func:`read_image` / :func:`load_image` decode a file (JPEG, PNG, WebP, TIFF, HEIC/HEIF), apply the
  EXIF orientation, drop alpha, keep 16-bit precision and shrink huge photos while decoding.
* :func:`as_rgb` validates and normalises an in-memory array (uint8, uint16 or float; gray, RGB or RGBA).
* :func:`as_image_and_scale` accepts either and says how much the photo was reduced, so a user-given
  ``px_per_mm`` can be corrected.

Anything wrong with the input raises :class:`~analyzer.errors.ImageError` with one sentence that says the
fix; hostile or broken files never escape as a raw decoder traceback.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageError, OptionError

__all__ = [
    "LoadedImage", "read_image", "load_image", "as_rgb", "as_image_and_scale",
    "MIN_SIDE_PX", "DEFAULT_MAX_PIXELS", "MAX_HEADER_PIXELS", "MAX_WHOLE_DECODE_PIXELS",
    "FLOAT_TOP_MAX", "FLOAT_BOTTOM_MIN", "FORMATS", "DAMAGE_WARNING",
    "peek_size", "jpeg_quality",
]

#: Shortest side (px) a photo must have: 200 px is 10 mm of skin at the 20 px/mm of a close-up, about the
#: smallest patch that holds several scars and a stable roughness figure.
MIN_SIDE_PX = 200
#: Photos with more pixels than this are reduced while decoding (about 4 mm of skin per 1000 px is plenty).
DEFAULT_MAX_PIXELS = 50_000_000
#: Absolute ceiling read from the header before any decoding: 200 MP phone photos pass, bombs do not.
MAX_HEADER_PIXELS = 250_000_000
#: Formats without a reduced decode (all but JPEG) are decoded whole before any reduction, and a file of a few
#: hundred kB can declare a blank 250 MP image: 2.9 GB of memory between analysis and metadata removal (a security
#: review); a 250 MP 16-bit colour one took 4 GB. Above this they are refused from the header; cameras' PNG, TIFF
#: (16-bit from raw) and HEIC exports are 12-100 MP.
MAX_WHOLE_DECODE_PIXELS = 100_000_000
#: Floating-point pixels above this are on another scale than [0, 1] (0–255, say): refused, not clipped to white.
FLOAT_TOP_MAX = 1.5
#: ... and below this: centred or normalised data ([-0.5, 0.5], [-1, 1]), which clipping at 0 would measure as a
#: photo several times rougher. (Sharpening or a colour conversion undershoots by a few hundredths at most.)
FLOAT_BOTTOM_MIN = -0.1
#: What the user is told Relief reads.
FORMATS = "JPEG, PNG, WebP, TIFF, HEIC"

# Pillow format names tried by Image.open. Restricting them keeps exotic decoders (EPS calls Ghostscript)
# away from user files. Multi-picture JPEGs from phones open through "JPEG" and report format "MPO".
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "HEIF")
_ORIENTATION_TAG = 0x0112

# Pillow's own bomb guard warns above MAX_IMAGE_PIXELS and refuses above twice that. Raise it to our
# ceiling (never lower it) so 200 MP photos open; Relief refuses anything above the ceiling itself.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_HEADER_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_HEADER_PIXELS

try:  # HEIC/HEIF from iPhones; without pillow-heif those files are reported as unreadable.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a listed dependency
    pass


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo and what was done to it.

    Attributes
    ----------
    pixels : ndarray, shape (H, W, 3), float32
        RGB in ``[0, 1]``, sRGB-encoded as in the file, upright (EXIF orientation applied).
    downscale : float
        Original pixels per returned pixel (1.0 if not reduced). Divide a ``px_per_mm`` measured on the
        original photo by this to get the scale of ``pixels``.
    original_size : tuple of int
        ``(width, height)`` of the full-resolution upright photo, in px.
    format : str
        Container format as Pillow names it: ``"JPEG"``, ``"MPO"``, ``"PNG"``, ``"WEBP"``, ``"TIFF"``, ``"HEIF"``.
    bit_depth : int
        Bits per channel in the file: 8, 16 (or 32 for float TIFF).
    jpeg_quality : float or None
        For a JPEG, the quality it was saved with (IJG scale 1–100), estimated from its luminance quantisation
        table (:func:`jpeg_quality`); None for other formats.
    camera : str or None
        The camera's make and model from the file's EXIF (:func:`camera_of`), e.g. ``"Apple iPhone 13"``; None
        when the file does not say (a messaging app's copy, a screenshot, a file whose metadata was removed).
    damaged : bool
        The JPEG looks damaged (:func:`_zero_filled_tail`) but not beyond doubt: measured, with
        :data:`DAMAGE_WARNING`.
    """

    pixels: np.ndarray
    downscale: float
    original_size: tuple[int, int]
    format: str
    bit_depth: int
    jpeg_quality: float | None = None
    camera: str | None = None
    damaged: bool = False


#: Said when a JPEG's last part looks filled in by the decoder (:func:`_zero_filled_tail`) in a colour a photo
#: could also end in (a footer or band with text can look alike).
DAMAGE_WARNING = ("the photo may be damaged: it ends in one flat colour, as a decoder fills in what it could not "
                  "read from a bad copy — export it again from the camera; ignore this if the photo has a "
                  "coloured band or caption at the bottom")


def _name(path: object) -> str:
    # Messages are one line even if a path holds a newline.
    return str(path).replace("\n", "\\n").replace("\r", "\\r")


def _too_small(w: int, h: int) -> ImageError:
    return ImageError(
        f"photo is {w}×{h} px; at least {MIN_SIDE_PX}×{MIN_SIDE_PX} px of skin are needed — "
        "move closer or crop less"
    )


def decoded_reduced(im: Image.Image) -> bool:
    """Whether an opened file can be decoded at a reduced size (JPEG's DCT scaling); other formats are decoded
    whole, and refused above :data:`MAX_WHOLE_DECODE_PIXELS`."""
    return im.format in ("JPEG", "MPO")


def whole_decode_too_large(name: str, fmt: str | None, w: int, h: int) -> ImageError:
    """The one-line refusal of a photo in a format decoded whole with more than MAX_WHOLE_DECODE_PIXELS."""
    return ImageError(
        f"{name} has {w}×{h} px ({w * h / 1e6:.0f} MP); {fmt or 'such'} photos are decoded whole, and Relief takes "
        f"at most {MAX_WHOLE_DECODE_PIXELS // 1_000_000} MP of them — export a JPEG or a smaller copy")


def _too_large(name: str, w: int | None, h: int | None, pixels: int) -> ImageError:
    size = f"{w}×{h} px ({pixels / 1e6:.0f} MP)" if w and h else f"{pixels / 1e6:.0f} MP"
    return ImageError(
        f"{name} has {size}, more than Relief accepts ({MAX_HEADER_PIXELS // 1_000_000} MP) — "
        "export a smaller copy"
    )


def as_rgb(image: np.ndarray, *, reduce: float = 1.0) -> np.ndarray:
    """Validate an image array and return it as float32 RGB in ``[0, 1]``.

    This is the single check every array passes before measurement.

    Parameters
    ----------
    image : ndarray, shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        ``uint8`` (0–255), ``uint16`` (0–65535) or floating point in ``[0, 1]``. Gray is repeated into
        three channels; a fourth (alpha) channel is dropped. Floats slightly outside ``[0, 1]`` (resampling
        overshoot) are clipped.
    reduce : float, optional
        Linear size factor in (0, 1] applied (area averaging) *before* the conversion to float, so a large
        photo is never converted at full size. The short-side check applies to the original.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        C-contiguous, values in ``[0, 1]``; always a new array.

    Raises
    ------
    ImageError
        Wrong type, dtype, shape or channel count; empty; NaN/inf; floats on a 0–255 scale; a short side
        below :data:`MIN_SIDE_PX`.

    Examples
    --------
    >>> as_rgb(np.full((300, 400), 255, np.uint8)).shape
    (300, 400, 3)
    """
    if not isinstance(image, np.ndarray):
        if isinstance(image, (str, os.PathLike)):
            raise ImageError("got a file path where an image array was expected — use load_image(path) first")
        try:
            image = np.asarray(image)
        except Exception as err:  # arbitrary objects: report, do not crash
            raise ImageError(f"expected an image array, got {type(image).__name__} — pass a numpy array") from err
    arr = image
    if arr.dtype == bool:
        raise ImageError("got a boolean mask, not a photo — pass the photo's uint8, uint16 or float pixels")
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3] if arr.shape[2] != 1 else arr
    elif arr.ndim != 2:
        raise ImageError(
            f"image array has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4) — "
            "pass one gray, RGB or RGBA picture"
        )
    if arr.size == 0:
        raise ImageError(f"image array of shape {image.shape} is empty — pass a photo with pixels")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise _too_small(w, h)
    if not 0 < reduce <= 1:
        raise OptionError(f"reduce must be in (0, 1], got {reduce!r}")
    if reduce < 1 and arr.dtype in (np.uint8, np.uint16, np.float32, np.float64):
        size = (max(1, round(w * reduce)), max(1, round(h * reduce)))
        arr = cv2.resize(np.ascontiguousarray(arr), size, interpolation=cv2.INTER_AREA)

    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) * np.float32(1 / 255)
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) * np.float32(1 / 65535)
    elif np.issubdtype(arr.dtype, np.floating):
        out = np.array(arr, dtype=np.float32)  # copy: the caller's array is never modified
        if not np.isfinite(out).all():
            raise ImageError("image array contains NaN or infinite values — replace them before measuring")
        top = float(out.max())
        if top > FLOAT_TOP_MAX:  # a 0–255 float image would otherwise clip to white
            raise ImageError(
                f"float image values reach {top:g}; expected [0, 1] — divide 8-bit values by 255"
            )
        if (bottom := float(out.min())) < FLOAT_BOTTOM_MIN:
            raise ImageError(f"float image values go down to {bottom:g}; expected brightness in [0, 1] — undo the "
                             "centring or normalisation (e.g. add 0.5, or map [-1, 1] to [0, 1]) first")
        np.clip(out, 0.0, 1.0, out=out)
    else:
        raise ImageError(
            f"image array has dtype {arr.dtype}; expected uint8, uint16 or float in [0, 1] — convert it first"
        )
    if out.ndim == 2:
        out = out[..., None]
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to an (H, W[, C]) array, as ``PIL.ImageOps.exif_transpose`` does."""
    if orientation in (5, 6, 7, 8):
        arr = np.swapaxes(arr, 0, 1)  # transpose; the rest is flips
        flips = {5: (), 6: (1,), 7: (0, 1), 8: (0,)}[orientation]
    else:
        flips = {2: (1,), 3: (0, 1), 4: (0,)}.get(orientation, ())
    for axis in flips:
        arr = np.flip(arr, axis)
    return arr


def _orientation(im: Image.Image) -> int:
    # PNG's getexif() decodes the whole image to find a late eXIf chunk; only trust what the header had.
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a corrupt EXIF block must not make an otherwise good photo unreadable
        return 1
    return value if 1 <= value <= 8 else 1


_MAKE_TAG, _MODEL_TAG = 0x010F, 0x0110


def camera_of(im: Image.Image) -> str | None:
    """``"<make> <model>"`` from an opened image's EXIF (the make left out when the model starts with it), printable
    and at most 80 characters; None without them. Each phone processes its photos in its own way (sharpening, local
    contrast, colour), which the roughness index reads: a comparison says when two photos come from different
    cameras."""
    if im.format == "PNG" and "exif" not in im.info:
        return None
    try:
        exif = im.getexif()
        make, model = (" ".join(str(exif.get(t, "") or "").replace("\x00", " ").split()) for t in (_MAKE_TAG, _MODEL_TAG))
    except Exception:  # a corrupt EXIF block: no camera, not an unreadable photo
        return None
    make = "".join(c for c in make if c.isprintable())
    model = "".join(c for c in model if c.isprintable())
    name = model if model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    return name[:80] or None


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _fit(w: int, h: int, max_pixels: int) -> tuple[int, int]:
    """Largest (w, h) with the same aspect ratio and at most max_pixels."""
    if w * h <= max_pixels:
        return w, h
    f = math.sqrt(max_pixels / (w * h))
    return max(1, int(w * f)), max(1, int(h * f))


#: The IJG (libjpeg) base luminance quantisation table (ITU-T T.81, Annex K.1), in row order as Pillow gives it.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def jpeg_quality(im: Image.Image) -> float | None:
    """The quality a JPEG was saved with, on libjpeg's 1–100 scale, from its luminance quantisation table.

    libjpeg scales its base table by ``5000 / q`` percent below quality 50 and by ``200 - 2 q`` percent above;
    the median ratio of the file's table to the base table inverts that (within 1 for files libjpeg wrote at
    quality 11–100; below 11 the table entries are capped at 255 and it reads ~11; for cameras' own tables it is
    the libjpeg quality of equal coarseness). None when ``im`` is not a JPEG or its tables cannot be read: the
    estimate only feeds a warning, so it never refuses a photo.
    """
    try:
        tables = getattr(im, "quantization", None)
        if im.format not in ("JPEG", "MPO") or not tables:
            return None
        layers = getattr(im, "layer", None)  # (component id, h, v, table index): the first is luma (Y or gray)
        key = layers[0][3] if layers and layers[0][3] in tables else min(tables)
        luma = np.asarray(tables[key], np.float64)
        if luma.size != 64:
            return None
        scale = float(np.median(luma * 100.0 / _IJG_LUMA))
    except Exception:  # a header Pillow parsed but that holds no usable table
        return None
    if not scale > 0:
        return None
    q = 5000.0 / scale if scale >= 100.0 else (200.0 - scale) / 2.0
    return float(min(max(q, 1.0), 100.0))


#: OpenCV's JPEG flags by DCT scale: colour and gray, each keeping the file's orientation (applied by _orient).
_CV_JPEG_FLAGS = {
    "RGB": {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8},
    "L": {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
          8: cv2.IMREAD_REDUCED_GRAYSCALE_8},
}


def _draft_size(size: tuple[int, int], max_pixels: int, reduce: float) -> tuple[int, int] | None:
    """The size a JPEG of ``size`` is asked to decode to (``Image.draft``'s request), or None for a full decode:
    at most ``max_pixels``, at least the share ``reduce`` and :data:`MIN_SIDE_PX` on the short side."""
    if size[0] * size[1] <= max_pixels and reduce > 0.5:
        return None
    fw, fh = _fit(*size, max_pixels)
    share = max(reduce, MIN_SIDE_PX / min(size))  # the decoded copy keeps the smallest photo's side
    return max(1, min(fw, math.ceil(size[0] * share))), max(1, min(fh, math.ceil(size[1] * share)))


def _jpeg_scale(size: tuple[int, int], max_pixels: int, reduce: float) -> int:
    """The DCT scale (1, 2, 4 or 8) Pillow's ``Image.draft`` picks for :func:`_draft_size`: the strongest
    reduction whose result is still at least that size."""
    want = _draft_size(size, max_pixels, reduce)
    if want is None:
        return 1
    scale = min(size[0] // want[0], size[1] // want[1])
    return next(k for k in (8, 4, 2, 1) if scale >= k)


def _jpeg_via_opencv(fh, im: Image.Image, max_pixels: int, reduce: float) -> np.ndarray | None:
    """An 8-bit RGB or gray JPEG decoded by OpenCV's libjpeg-turbo at the scale Pillow's ``draft`` would choose:
    the same pixels to the bit, in less time (a 12 MP photo at 1/4: 13.9 against 14.6 ms, interleaved medians).
    None when OpenCV does not return the expected size (then Pillow decodes, and says what is wrong)."""
    k = _jpeg_scale(im.size, max_pixels, reduce)
    fh.seek(0)
    # A truncated file decodes to None here (tests/test_loading.py: truncated files stay errors).
    arr = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), _CV_JPEG_FLAGS[im.mode][k] | cv2.IMREAD_IGNORE_ORIENTATION)
    fh.seek(0)
    rows, cols = -(-im.size[1] // k), -(-im.size[0] // k)  # the decoded size (libjpeg rounds up)
    if arr is None or arr.shape[:2] != (rows, cols) or arr.dtype != np.uint8:
        return None
    target = _fit(*im.size, max_pixels)
    if min(cols // target[0], rows // target[1]) >= 2:  # (Pillow's path box-reduces first: let it)
        return None
    # (a contiguous RGB copy: a reversed view would make the float conversion 7x slower)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if arr.ndim == 3 else arr


def _decode(fh, im: Image.Image, max_pixels: int, reduce: float = 1.0) -> tuple[np.ndarray, int, int, tuple[int, int]]:
    """Decode an opened file to an array of at most max_pixels (and, for JPEGs, not finer than ``reduce`` needs).

    Returns the array, its bit depth, the EXIF orientation still to apply, and the full-resolution
    (w, h) in the array's (not yet oriented) frame, and whether it looks damaged (:data:`DAMAGE_WARNING`).
    """
    fmt = im.format  # (im may be replaced below by a reduced or converted copy, which has no format)
    if im.mode in ("RGB", "RGBA", "LA") and ";16" in _rawmode(im):
        # Pillow has no 16-bit-per-channel colour mode and would round to 8 bit; OpenCV keeps all 16.
        if im.format == "TIFF":  # Pillow reports TIFF sizes already oriented; the strips are stored unrotated
            size = (int(im.tag_v2[256]), int(im.tag_v2[257]))
            orientation = int(im.tag_v2.get(_ORIENTATION_TAG, 1))
            orientation = orientation if 1 <= orientation <= 8 else 1
        else:
            size, orientation = im.size, _orientation(im)
        fh.seek(0)
        arr = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_UNCHANGED)  # no auto-rotation
        if arr is None or arr.shape[:2] != (size[1], size[0]):
            raise OSError("OpenCV could not decode the 16-bit image")
        if arr.ndim == 3:
            arr = arr[..., 0] if arr.shape[2] == 2 else arr[..., 2::-1]  # gray+alpha -> gray; BGR(A) -> RGB
        bit_depth = 16
    elif im.format in ("JPEG", "MPO") and im.mode in ("RGB", "L") and (arr := _jpeg_via_opencv(fh, im, max_pixels,
                                                                                          reduce)) is not None:
        size, orientation, bit_depth = im.size, _orientation(im), 8
    else:
        size = im.size
        if im.format in ("JPEG", "MPO") and (want := _draft_size(size, max_pixels, reduce)) is not None:
            # DCT-domain 1/2, 1/4, 1/8 scaling (libjpeg): only the needed pixels are ever computed. Pillow picks
            # the strongest reduction whose result is still at least the requested size.
            im.draft("RGB", want)
        im.load()  # forces decoding; truncated data raises here (LOAD_TRUNCATED_IMAGES stays False)
        orientation = _orientation(im)  # 1 for TIFF: Pillow has applied it while loading
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(im)
            if arr.dtype != np.uint16:  # mode "I" is int32 holding 16-bit samples
                arr = np.clip(arr, 0, 65535).astype(np.uint16)
            bit_depth = 16
        elif im.mode == "F":
            arr, bit_depth = np.asarray(im, dtype=np.float32), 32
        else:
            target = _fit(*size, max_pixels)
            k = min(im.size[0] // target[0], im.size[1] // target[1])
            if k >= 2 and im.mode in ("RGB", "RGBA", "L", "LA"):
                im = im.reduce(k)  # integer box reduction before the exact resize: less memory, faster
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")  # palette, alpha, CMYK, bilevel ...; alpha is dropped
            arr, bit_depth = np.asarray(im), 8
    damaged = fmt in ("JPEG", "MPO") and bit_depth == 8 and _zero_filled_tail(arr)
    if damaged and np.all(arr[-1, -1] == 128):
        # Mid-grey is what libjpeg decodes where no data was left (every coefficient zero): beyond doubt
        raise OSError("the entropy-coded data ends early (libjpeg filled the rest)")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        arr = cv2.resize(np.ascontiguousarray(arr), _fit(*size, max_pixels), interpolation=cv2.INTER_AREA)
    return arr, bit_depth, orientation, size, damaged


def _zero_filled_tail(arr: np.ndarray) -> bool:
    """Whether a decoded JPEG ends in what libjpeg filled in for data it could not decode.

    Damaged entropy-coded data (a bad copy: bit errors, a block of zeros or garbage) makes libjpeg warn "Corrupt
    JPEG data: premature end of data segment" — on stderr only — and fill every block after the damage with one
    flat colour, often most of the photo (which then read 42 % rough instead of 5 %). Its trace is the block where
    decoding stopped: the fill begins inside a row of blocks, so the photo ends in rows of one exact colour below
    a few rows (one row of blocks) that end in a run of that colour of one and the same length, with picture
    above them. A band a photo really ends in (a footer, padding, a border) begins at a row's left edge, and text
    or a logo in it has the band's colour above it too. A bit error that libjpeg decodes past stays undetected.
    """
    rows = arr.reshape(arr.shape[0], arr.shape[1], -1)
    height, width = rows.shape[:2]
    colour = rows[-1, -1]

    def same(r: int) -> np.ndarray:  # (W,) pixels of row r of exactly the last pixel's colour (row by row: an
        return np.all(rows[r] == colour, axis=1)  # intact photo costs one row, not a pass over the whole picture)

    def trailing(r: int) -> int:  # length of the run of that colour that ends row r
        differs = np.flatnonzero(~same(r))
        return width - (int(differs[-1]) + 1 if differs.size else 0)

    r = height - 1
    while r >= 0 and same(r).all():  # whole rows of that colour at the bottom
        r -= 1
    if r < 0:
        return False  # one colour throughout (a lens cap): no texture, not damage
    run = trailing(r)
    if run < (2 if r < height - 1 else max(16, width // 4)):
        return False  # the band starts at a row's left edge (or there is none)
    if same(r)[:width - run].mean() > 0.5:
        return False  # mostly that colour left of the run too: the edge of a band, blurred by compression
    top = r
    # the rest of that row of blocks (a pixel or two shorter or longer: chroma is upsampled across its edge)
    while top > 0 and r - top < 16 and abs(trailing(top - 1) - run) <= 2:
        top -= 1
    return top > 0 and trailing(top - 1) < 2  # picture above it, not more of a band


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, reduce: float = 1.0) -> LoadedImage:
    """Read a photo file into Relief's image form, reducing it if it is huge.

    Parameters
    ----------
    path : str or PathLike
        JPEG, PNG (8/16-bit; gray, gray+alpha, palette, RGB, RGBA), WebP, TIFF (8/16-bit) or HEIC/HEIF.
    max_pixels : int, optional
        Photos with more pixels are reduced (area averaging) to fit; JPEGs are reduced while decoding.
    reduce : float, optional
        Linear share of the pixels the caller needs, in (0, 1]. JPEGs are decoded with DCT scaling at the
        strongest power-of-two reduction (1/2, 1/4, 1/8) that keeps at least this share (and at least
        :data:`MIN_SIDE_PX` on the short side), which costs about 40 % of a full decode; other formats are decoded
        in full. ``downscale`` says what was done.

    Returns
    -------
    LoadedImage
        ``pixels`` float32 (H, W, 3) in ``[0, 1]``, plus ``downscale``, ``original_size``, ``format``
        and ``bit_depth``.

    Raises
    ------
    ImageError
        Missing, empty, unreadable, truncated or corrupt file, unsupported format, a photo smaller than
        :data:`MIN_SIDE_PX` or a header claiming more than :data:`MAX_HEADER_PIXELS`.
    OptionError
        ``max_pixels`` below ``MIN_SIDE_PX ** 2``.

    Notes
    -----
    The header is read first (Pillow opens lazily) and the pixel count is checked before anything is
    decoded, so a crafted "decompression bomb" costs no memory. Memory while decoding is bounded by the
    ceiling; JPEGs use DCT scaling (``Image.draft``) and never exist at full size when reduced. Alpha is
    dropped, not composited. ICC profiles are ignored: values are as stored (sRGB assumed).
    """
    if not isinstance(max_pixels, (int, np.integer)) or max_pixels < MIN_SIDE_PX**2:
        raise OptionError(f"max_pixels must be an integer of at least {MIN_SIDE_PX**2} — pass a larger value")
    if not 0 < reduce <= 1:
        raise OptionError(f"reduce must be in (0, 1], got {reduce!r}")
    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise ImageError(f"expected a file path, got {type(path).__name__} — pass the photo's path") from None
    name = _name(p)
    try:
        if not p.exists():
            raise ImageError(f"photo not found: {name} — check the path")
        if p.is_dir():
            raise ImageError(f"{name} is a folder, not a photo — pass the path of a photo file inside it")
        if not p.is_file():  # (a named pipe would block the read until someone writes to it; a device never ends)
            raise ImageError(f"{name} is not a regular file (a pipe, socket or device) — pass a saved photo file")
        if p.stat().st_size == 0:
            raise ImageError(f"{name} is empty (0 bytes) — copy the photo again")
        with open(p, "rb") as fh:
            try:
                with warnings.catch_warnings():
                    # Pillow warns between its limit and twice it; the ceiling below decides instead.
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    im = Image.open(fh, formats=_PIL_FORMATS)
            except Image.UnidentifiedImageError:
                raise ImageError(
                    f"{name} is not an image (or a format Relief does not read: {FORMATS}) — "
                    "save the photo as one of these"
                ) from None
            except Image.DecompressionBombError as err:
                m = re.search(r"\((\d+) pixels\)", str(err))
                raise _too_large(name, None, None, int(m.group(1)) if m else 0) from None
            with im:
                w, h = im.size
                if w * h > MAX_HEADER_PIXELS:
                    raise _too_large(name, w, h, w * h)
                if w * h > MAX_WHOLE_DECODE_PIXELS and not decoded_reduced(im):
                    raise whole_decode_too_large(name, im.format, w, h)
                if min(w, h) < MIN_SIDE_PX:
                    raise _too_small(w, h)
                fmt = im.format or "unknown"
                quality = jpeg_quality(im)
                camera = camera_of(im)
                arr, bit_depth, orientation, (w, h), damaged = _decode(fh, im, int(max_pixels), float(reduce))
        if arr.dtype.kind == "f" and np.isfinite(arr).all():
            # (as_rgb's advice is for arrays — "divide by 255", "add 0.5" — a file's owner re-exports it instead)
            low, top = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
            if top > FLOAT_TOP_MAX or low < FLOAT_BOTTOM_MIN:
                raise ImageError(f"{name} holds floating-point values from {low:g} to {top:g}, not brightness from 0 "
                                 "to 1 — export the photo as an 8- or 16-bit image")
        pixels = as_rgb(_orient(arr, orientation))
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{name} cannot be read (permission denied) — check the file's permissions") from None
    except MemoryError:
        raise ImageError(f"{name} is too large to decode in the memory available — export a smaller copy") from None
    except Exception as err:
        # Decoders fed hostile bytes raise almost anything (OSError, SyntaxError, struct.error, EOFError,
        # ValueError, AssertionError, RuntimeError from libheif, cv2.error ...); all mean the same to a user.
        raise ImageError(f"{name} is truncated or corrupt — export the photo again") from err

    ds = 0.5 * (w / arr.shape[1] + h / arr.shape[0])
    downscale = 1.0 if arr.shape[:2] == (h, w) else float(ds)
    if orientation >= 5:
        w, h = h, w
    return LoadedImage(pixels=pixels, downscale=downscale, original_size=(int(w), int(h)),
                       format=fmt, bit_depth=bit_depth, jpeg_quality=quality, camera=camera, damaged=damaged)


def peek_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """Upright ``(width, height)`` of a photo file from its header alone (nothing is decoded).

    Returns None when the header cannot be read; :func:`read_image` then says why.
    """
    try:
        if not Path(os.fspath(path)).is_file():  # (opening a named pipe would wait for a writer)
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(os.fspath(path), formats=_PIL_FORMATS) as im:
                w, h = im.size
                if im.format != "TIFF" and _orientation(im) >= 5:  # Pillow reports TIFF sizes already upright
                    w, h = h, w
                return int(w), int(h)
    except Exception:  # anything wrong is reported by read_image, with its one-line message
        return None


def load_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photo file as float32 RGB ``(H, W, 3)`` in ``[0, 1]``, upright and sRGB-encoded.

    Same as ``read_image(path, max_pixels=max_pixels).pixels``; see :func:`read_image` for formats,
    reduction of huge photos and errors.

    Examples
    --------
    >>> rgb = load_image("sample_images/cheek.jpg")  # doctest: +SKIP
    >>> rgb.dtype, rgb.shape[2]  # doctest: +SKIP
    (dtype('float32'), 3)
    """
    return read_image(path, max_pixels=max_pixels).pixels


def as_image_and_scale(image_or_path) -> tuple[np.ndarray, float]:
    """Accept a path or an array; return the normalised image and its downscale factor.

    Parameters
    ----------
    image_or_path : str, PathLike or ndarray
        A photo file (read with :func:`read_image`) or an array (checked with :func:`as_rgb`).

    Returns
    -------
    rgb : ndarray, shape (H, W, 3), float32
        In ``[0, 1]``.
    downscale : float
        Original pixels per returned pixel; 1.0 for arrays. Divide a ``px_per_mm`` of the original by it.
    """
    if isinstance(image_or_path, (str, os.PathLike)):
        loaded = read_image(image_or_path)
        return loaded.pixels, loaded.downscale
    return as_rgb(image_or_path), 1.0
