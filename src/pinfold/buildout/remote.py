"""Remote ``extends`` for ``pinfold import --upstream``: one download per URL."""

from __future__ import annotations

import urllib.request

__all__ = ["fetch_text"]


def fetch_text(url: str) -> str:
    """The text at ``url`` (UTF-8); raises OSError when it cannot be downloaded."""
    if not url.startswith(("http://", "https://", "file://")):
        raise OSError(f"unsupported URL scheme: {url}")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (scheme checked above)
        data: bytes = response.read()
    return data.decode("utf-8")
