"""Content-addressed photo store: ``<root>/ab/<sha256>.<ext>``, or ``<root>/ab/<name>.enc`` when encrypted.

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

Privacy
-------
* :meth:`BlobStore.put` first removes the photo's metadata (GPS, camera serial, owner, thumbnails, ...)
  with :func:`storage.photo_privacy.strip_metadata`; decoded pixels are unchanged. The SHA-256 that names
  a photo is that of the stripped file (the bytes :meth:`BlobStore.read` returns).
* With a key (``RELIEF_ENCRYPTION_KEY``: 32 random bytes as 64 hex digits or base64url), files are
  encrypted with AES-256-GCM: ``MAGIC | 12-byte random nonce | ciphertext | 16-byte tag``, the photo's
  SHA-256 bound in as associated data (a file moved to another photo's name does not decrypt). The file
  name is ``HMAC-SHA256(name key, sha256)``, so the folder does not reveal the hashes kept in the
  database; identical photos still get one name (deduplication), and a read decrypts, then checks the
  plaintext against the hash (verification). Encryption and name keys are derived from the one key with
  HKDF-SHA256. ``.key-check`` in the folder holds a MAC of a constant under the key, so a store opened
  without the key, or with another one, says so instead of reporting missing files, and refuses to add
  unencrypted (or differently encrypted) photos to it.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import StorageError
from .photo_privacy import strip_metadata

try:
    import fcntl  # POSIX: the guard also holds between processes (two dashboards, the command line)
except ImportError:  # pragma: no cover - Windows: within this process only
    fcntl = None  # type: ignore[assignment]

__all__ = ["BlobStore", "sniff_content_type", "extension_for", "sha256_hex", "parse_key", "PhotoKeyError",
           "KEY_ENV"]

TMP_PREFIX = ".tmp-"
KEY_ENV = "RELIEF_ENCRYPTION_KEY"
KEY_CHECK = ".key-check"
LOCK_NAME = ".lock"  # (BlobStore.guard)
ENC_SUFFIX = "enc"
MAGIC = b"RLFPHOTO-AESGCM1"  # format marker and version of an encrypted photo file
_NONCE = 12
_FROM_ENV = object()
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
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"):  # pillow-heif's
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


class PhotoKeyError(StorageError):
    """The photo key is malformed, missing or not the one the photos were encrypted with."""


def parse_key(text: str | bytes) -> bytes:
    """The 32 key bytes from ``RELIEF_ENCRYPTION_KEY`` text: 64 hex digits or base64url (padding optional).

    Raises :class:`PhotoKeyError` with one line that says how to make a valid key.
    """
    if isinstance(text, (bytes, bytearray)) and len(text) == 32:
        return bytes(text)
    s = (text.decode("ascii", "replace") if isinstance(text, (bytes, bytearray)) else str(text)).strip()
    key = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", s):
        key = bytes.fromhex(s)
    elif re.fullmatch(r"[A-Za-z0-9_\-+/]{43}=?", s):
        try:
            key = base64.b64decode(s.replace("-", "+").replace("_", "/").rstrip("=") + "=", validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise PhotoKeyError(
            f"{KEY_ENV} is not a 32-byte key (64 hex digits or 43 base64url characters); make one with "
            "python -c \"import secrets; print(secrets.token_urlsafe(32))\" and keep it safe"
        )
    return key


def _derive(key: bytes, purpose: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"relief photos: " + purpose).derive(key)


def extension_for(content_type: str) -> str:
    """File extension (no dot) used in the store for a MIME type."""
    return _EXTENSIONS.get(content_type, "bin")


class BlobStore:
    """Photos on disk, addressed by SHA-256.

    Parameters
    ----------
    root : path-like
        Folder of the store (created when missing), e.g. ``<data dir>/photos``.
    key : bytes or str or None, optional
        Encryption key (32 bytes, or its text form, see :func:`parse_key`); default: ``$RELIEF_ENCRYPTION_KEY``
        (unset or empty: no encryption). ``None`` means no key.
    """

    def __init__(self, root: str | os.PathLike[str], *, key: bytes | str | None = _FROM_ENV):  # type: ignore
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # (new folders: the owner only)
        self._lock = threading.Lock()
        if key is _FROM_ENV:
            key = os.environ.get(KEY_ENV) or None
        self._aead = self._name_key = self._check = None
        if key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            raw = parse_key(key)
            self._aead = AESGCM(_derive(raw, b"encryption v1"))
            self._name_key = _derive(raw, b"file names v1")
            self._check = MAGIC + hmac.new(_derive(raw, b"key check v1"), b"relief", hashlib.sha256).digest()

    @property
    def encrypted(self) -> bool:
        """Whether this store's photos are encrypted (a key is given, or files were written with one)."""
        return self._aead is not None or (self.root / KEY_CHECK).is_file()

    def _key_problem(self) -> PhotoKeyError | None:
        """Why photos cannot be read or written with the key at hand, or ``None``."""
        try:
            stored = (self.root / KEY_CHECK).read_bytes()
        except FileNotFoundError:
            return None
        if self._check is None:
            return PhotoKeyError(
                f"the photos are encrypted and {KEY_ENV} is not set; set it to the key they were written with"
            )
        if not hmac.compare_digest(stored, self._check):
            return PhotoKeyError(
                f"{KEY_ENV} is not the key the photos were encrypted with (wrong key); set the original key"
            )
        return None

    def _name(self, sha256: str) -> str:
        """File name stem for a hash: the hash itself, or its HMAC under the name key when encrypting."""
        if self._name_key is None:
            return sha256
        return hmac.new(self._name_key, sha256.encode("ascii"), hashlib.sha256).hexdigest()

    def path(self, sha256: str, content_type: str) -> Path:
        """Where the bytes with this hash and type live (whether or not the file exists)."""
        if not _HEX64.match(sha256):
            raise ValueError(f"{sha256!r} is not a lower-case hex SHA-256")
        if self._aead is not None:
            name = self._name(sha256)
            return self.root / name[:2] / f"{name}.{ENC_SUFFIX}"
        return self.root / sha256[:2] / f"{sha256}.{extension_for(content_type)}"

    def _plain_path(self, sha256: str, content_type: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{extension_for(content_type)}"

    def put(self, data: bytes) -> tuple[str, str, Path]:
        """:meth:`put_new` without its last element."""
        return self.put_new(data)[:3]

    def put_new(self, data: bytes) -> tuple[str, str, Path, bool]:
        """Strip the photo's metadata, then store it once (encrypted with a key); return
        ``(sha256, content_type, path, created)`` of the stored (stripped) photo, ``created`` False when the
        file was there already.

        When a file with this hash already exists it is left as it is (its modification time is refreshed
        so a concurrent :meth:`orphans` sweep with a grace period does not remove it).

        Raises
        ------
        storage.photo_privacy.PhotoFormatError
            The photo is too damaged for its metadata to be removed.
        PhotoKeyError
            The store is encrypted and the key is missing or wrong (nothing is written).
        """
        problem = self._key_problem()
        if problem is not None:
            raise problem
        data = strip_metadata(data)
        sha = sha256_hex(data)
        ctype = sniff_content_type(data)
        final = self.path(sha, ctype)
        if self._aead is not None:
            if not (self.root / KEY_CHECK).is_file():
                _write_atomic(self.root / KEY_CHECK, self._check)
            nonce = os.urandom(_NONCE)
            data = MAGIC + nonce + self._aead.encrypt(nonce, data, MAGIC + sha.encode("ascii"))
        if final.exists():
            try:
                os.utime(final)
            except OSError:
                pass
            return sha, ctype, final, False
        # A concurrent writer of the same hash may win the race; it wrote the same photo, and the rename is
        # atomic either way, so readers never see a partial file.
        _write_atomic(final, data)
        return sha, ctype, final, True

    def read(self, sha256: str, content_type: str, *, verify: bool = True) -> bytes:
        """The stored bytes; with ``verify`` their hash is checked against the name.

        Raises
        ------
        FileNotFoundError
            The file is missing.
        ValueError
            The file's content does not match its hash (disk corruption or tampering).
        PhotoKeyError
            The photos are encrypted and the key is missing or wrong.
        """
        problem = self._key_problem()
        if problem is not None:
            raise problem
        if self._aead is None:
            data = self.path(sha256, content_type).read_bytes()
        else:
            try:
                blob = self.path(sha256, content_type).read_bytes()
            except FileNotFoundError:  # written before the key was set: still plain
                data = self._plain_path(sha256, content_type).read_bytes()
            else:
                data = self._decrypt(sha256, blob)
        if verify and sha256_hex(data) != sha256:
            raise ValueError(f"photo file {sha256[:12]}… is corrupt (content does not match its hash)")
        return data

    def _decrypt(self, sha256: str, blob: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _NONCE + 16:
            raise ValueError(f"photo file {sha256[:12]}… is corrupt (not an encrypted photo file)")
        nonce = blob[len(MAGIC):len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + _NONCE:], MAGIC + sha256.encode("ascii"))
        except InvalidTag:
            raise ValueError(f"photo file {sha256[:12]}… is corrupt (it does not decrypt with this key)") from None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Held while a save commits rows for its files and while a deletion decides which files no row uses and
        removes them — in this process and, through a lock file in the folder, in others on this machine.

        Files are shared by content: a save that found its photo's file already there would otherwise commit a
        row for it just after a deletion (or another save's clean-up), seeing no committed row, removed it. Not
        re-entrant; held only for a commit or a removal, never during an analysis.
        """
        with self._lock:
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # (a folder restored without it)
                fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except OSError:  # (a read-only or full folder: this process's lock still holds; the writes say why)
                fd = None
            try:
                if fd is not None and fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                if fd is not None:
                    os.close(fd)  # (releases the lock)

    def discard(self, sha256: str, content_type: str) -> bool:
        """Delete the photo with this hash in every form it may be stored in; ``False`` when none was there."""
        found = [self.remove(p) for p in {self.path(sha256, content_type), self._plain_path(sha256, content_type)}]
        return any(found)

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        """``(name, path)`` of every stored photo; temporary files are never listed.

        ``name`` is the SHA-256 of a plain file and the HMAC of the SHA-256 of an encrypted one.
        """
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
        problem = self._key_problem()
        if problem is not None:  # without the right key, names cannot be matched to hashes: remove nothing
            raise problem
        keep = set(referenced) | {self._name(sha) for sha in referenced}
        candidates = [p for name, p in self if name not in keep] + self.temp_files()
        for p in candidates:
            try:
                if p.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if self.remove(p):
                removed.append(p)
        return removed


def _write_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` through a fsync'ed temporary file and an atomic rename."""
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(final.parent)


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
