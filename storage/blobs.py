"""Content-addressed photo store: ``<root>/ab/<sha256>.<ext>``.

A photo's file name is the SHA-256 of its bytes, so

* the same bytes are stored once, however often they are uploaded;
* a file is never overwritten with different content (a name *is* its content), and a stored file can be
  checked against its name;
* a file left behind by a transaction that rolled back (or a process that died) is harmless: no row refers
  to it, and :meth:`BlobStore.orphans` finds it for garbage collection.

Writes are atomic: bytes go to a temporary file ``.tmp-*`` in the destination folder, are flushed and
fsync'ed, then ``os.replace``'d onto the final name; readers see either no file or the whole file.
Temporary files are never listed as photos.

The extension comes from the bytes (magic numbers), not from the uploaded file name, so identical bytes
always map to the same path.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BlobStore", "sniff_content_type", "extension_for", "sha256_hex"]

TMP_PREFIX = ".tmp-"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/tiff": "tif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "application/octet-stream": "bin",
}


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sniff_content_type(data: bytes) -> str:
    """MIME type of a photo from its first bytes; ``application/octet-stream`` when not recognised."""
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"):
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"mif1", b"msf1"):
            return "image/heif"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"BM"):
        return "image/bmp"
    return "application/octet-stream"


def extension_for(content_type: str) -> str:
    """File extension (no dot) used in the store for a MIME type."""
    return _EXTENSIONS.get(content_type, "bin")


class BlobStore:
    """Photos on disk, addressed by SHA-256.

    Parameters
    ----------
    root : path-like
        Folder of the store (created when missing), e.g. ``<data dir>/photos``.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str, content_type: str) -> Path:
        """Where the bytes with this hash and type live (whether or not the file exists)."""
        if not _HEX64.match(sha256):
            raise ValueError(f"{sha256!r} is not a lower-case hex SHA-256")
        return self.root / sha256[:2] / f"{sha256}.{extension_for(content_type)}"

    def put(self, data: bytes) -> tuple[str, str, Path]:
        """Store ``data`` once; return ``(sha256, content_type, path)``.

        When a file with this hash already exists it is left as it is (its modification time is refreshed
        so a concurrent :meth:`orphans` sweep with a grace period does not remove it).
        """
        sha = sha256_hex(data)
        ctype = sniff_content_type(data)
        final = self.path(sha, ctype)
        if final.exists():
            try:
                os.utime(final)
            except OSError:
                pass
            return sha, ctype, final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            # A concurrent writer of the same hash may win the race; it wrote identical bytes, and the
            # rename is atomic either way, so readers never see a partial file.
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(final.parent)
        return sha, ctype, final

    def read(self, sha256: str, content_type: str, *, verify: bool = True) -> bytes:
        """The stored bytes; with ``verify`` their hash is checked against the name.

        Raises
        ------
        FileNotFoundError
            The file is missing.
        ValueError
            The file's content does not match its hash (disk corruption or tampering).
        """
        data = self.path(sha256, content_type).read_bytes()
        if verify and sha256_hex(data) != sha256:
            raise ValueError(f"photo file {sha256[:12]}… is corrupt (content does not match its hash)")
        return data

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        """``(sha256, path)`` of every stored photo; temporary files are never listed."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in sorted(sub.iterdir()):
                if f.name.startswith(TMP_PREFIX) or not f.is_file():
                    continue
                sha = f.name.split(".", 1)[0]
                if _HEX64.match(sha) and sha.startswith(sub.name):
                    yield sha, f

    def temp_files(self) -> list[Path]:
        """Leftover ``.tmp-*`` files of writes that never finished (a killed process)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(f"*/{TMP_PREFIX}*") if p.is_file())

    def remove(self, path: Path) -> bool:
        """Delete one file of the store; ``False`` when it was already gone."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        try:
            path.parent.rmdir()  # only succeeds when the fan-out folder is empty
        except OSError:
            pass
        return True

    def sweep(self, referenced: set[str], *, grace_s: float) -> list[Path]:
        """Remove photos whose hash is not in ``referenced`` and stale temporary files.

        Only files older than ``grace_s`` seconds are touched, so a save still in progress in another
        process (file written, rows not yet committed) is never broken.
        """
        cutoff = time.time() - grace_s
        removed = []
        candidates = [p for sha, p in self if sha not in referenced] + self.temp_files()
        for p in candidates:
            try:
                if p.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if self.remove(p):
                removed.append(p)
        return removed


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
