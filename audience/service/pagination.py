"""Page sizes and page tokens (AIP-158).

Tokens are opaque to clients and cannot be forged: URL-safe base64 of a small JSON object
followed by an HMAC-SHA256 tag under a server secret. A token is bound to the list and the
filter it came from (the method, the parent, the view): a token of ``ListRuns`` for one parent
is refused for another parent or for ``ListAudiences``, and an edited or made-up token is
refused, instead of silently returning some other page (INVALID_ARGUMENT either way).

The secret: ``AUDIENCE_PAGE_TOKEN_SECRET`` (the environment of ``audience serve``) when set,
so several replicas behind one address accept each other's tokens; otherwise 32 random bytes
drawn when the process starts, so tokens end with the process (a client starts again from the
first page). The secret never leaves the process and is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets

from audience.service.errors import invalid_argument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
SECRET_ENV = "AUDIENCE_PAGE_TOKEN_SECRET"
_TAG_BYTES = 16


def _server_secret() -> bytes:
    configured = os.environ.get(SECRET_ENV, "")
    return configured.encode() if configured else secrets.token_bytes(32)


_SECRET = _server_secret()


def page_size(requested: int, field: str = "page_size") -> int:
    """0 → the default; above the maximum → the maximum; negative → INVALID_ARGUMENT."""
    if requested < 0:
        raise invalid_argument(f"{field} must not be negative", field)
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _tag(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_token(kind: str, scope: str, position: str | int, *, secret: bytes | None = None) -> str:
    """A signed token for *position* in the list *kind* filtered by *scope*."""
    payload = json.dumps({"k": kind, "s": scope, "p": position}, separators=(",", ":")).encode()
    raw = payload + _tag(payload, secret or _SECRET)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str, scope: str, field: str = "page_token", *,
                 secret: bytes | None = None) -> str | int | None:
    """The position stored in *token*; None for the empty token (the first page)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode())
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) > _TAG_BYTES and hmac.compare_digest(tag, _tag(payload, secret or _SECRET)):
            data = json.loads(payload)
            position = data["p"]
            if data["k"] == kind and data["s"] == scope and isinstance(position, str | int):
                return position
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise invalid_argument("page_token is not a token from a previous call of this method with the "
                           "same parent and filter", field)
