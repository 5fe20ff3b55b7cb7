"""Page sizes and page tokens (AIP-158).

Tokens are opaque to clients (URL-safe base64 of a small JSON object) but bound to the list
they came from: a token of ``ListRuns`` for one parent is refused for another parent or for
``ListAudiences``, instead of silently returning the wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json

from audience.service.errors import invalid_argument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, field: str = "page_size") -> int:
    """0 → the default; above the maximum → the maximum; negative → INVALID_ARGUMENT."""
    if requested < 0:
        raise invalid_argument(f"{field} must not be negative", field)
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(kind: str, scope: str, position: str | int) -> str:
    raw = json.dumps({"k": kind, "s": scope, "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str, scope: str, field: str = "page_token") -> str | int | None:
    """The position stored in *token*; None for the empty token (the first page)."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = data["p"]
        if data["k"] == kind and data["s"] == scope and isinstance(position, str | int):
            return position
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise invalid_argument("page_token is not a token from a previous call of this method with the "
                           "same parent", field)
