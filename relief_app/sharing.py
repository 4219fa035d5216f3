"""Patient links on the app side: the URL a link opens and its QR code (``segno``). No Streamlit."""
from __future__ import annotations

import io
import os
from urllib.parse import urlencode, urlsplit, urlunsplit

import segno

__all__ = ["base_url", "link_url", "qr_png"]


def base_url(current_url: str | None = None) -> str:
    """Where the dashboard is reached: ``RELIEF_PUBLIC_URL`` (set it behind a reverse proxy or for phones on the
    clinic's Wi-Fi), else the address this browser used, else ``http://localhost:8501``."""
    public = os.environ.get("RELIEF_PUBLIC_URL")
    parts = urlsplit(public or current_url or "http://localhost:8501")
    # A configured address may carry a path (a sub-path behind a proxy); the browser's path is only its page.
    path = parts.path.rstrip("/") if public else ""
    return urlunsplit((parts.scheme or "http", parts.netloc, path, "", ""))


def link_url(token: str, base: str) -> str:
    """The address a patient opens: ``<base>/?link=<token>``."""
    return f"{base.rstrip('/')}/?{urlencode({'link': token})}"


def qr_png(url: str, *, scale: int = 6) -> bytes:
    """A QR code of ``url`` as PNG bytes (error correction M, quiet zone kept)."""
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()
