"""Optional API keys: user keys for /v1, separate admin keys for /v1/admin."""

from __future__ import annotations

import hmac

from fastapi import Request

from service.config import Settings
from service.errors import Forbidden, Unauthorized

# Spaces and tabs around a header value are not part of it (RFC 9110 §5.5). Some HTTP parsers
# drop them and some keep the trailing ones; stripping here makes keys parser-independent.
OPTIONAL_WHITESPACE = " \t"


def offered_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`, as sent but for the whitespace
    around the header value."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip(OPTIONAL_WHITESPACE).partition(" ")
        if scheme.lower() == "bearer" and token:
            return token
    key = request.headers.get("x-api-key")
    return None if key is None else key.strip(OPTIONAL_WHITESPACE)


def key_matches(offered: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    if not offered:
        return False
    candidate = offered.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched


def require_user_key(request: Request, settings: Settings) -> None:
    if settings.api_keys and not key_matches(offered_key(request), settings.api_keys):
        raise Unauthorized("send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key'")


def require_admin_key(request: Request, settings: Settings) -> None:
    if not settings.admin_keys:
        raise Forbidden("the admin API is disabled; set SITREP_ADMIN_KEYS to enable it")
    if not key_matches(offered_key(request), settings.admin_keys):
        raise Unauthorized("send a valid admin key as 'Authorization: Bearer <key>' or 'X-API-Key'")
