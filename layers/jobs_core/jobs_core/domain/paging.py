"""Cursor paging, shared by every list: a cursor is the position after the page's last row,
URL-safe base64 without padding; one a client made up is a 400, never a 500."""

from __future__ import annotations

import base64
import binascii

from jobs_core.errors import InvalidRequest

# A page also stops short of about 1 MiB (each row may carry KiBs of JSON): no list becomes a
# multi-megabyte response.
MAX_PAGE_BYTES = 1024 * 1024


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str:
    if not cursor:
        return ""
    try:
        after = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("invalid cursor") from None
    if "\x00" in after:
        raise InvalidRequest("invalid cursor")
    return after
