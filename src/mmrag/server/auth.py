"""Optional bearer-key authentication.

With a key set, every API route needs `Authorization: Bearer <key>`. Media and
thumbnail GETs also accept the key in the `mmrag_key` cookie, because an <img> or
<video> element cannot send headers; those routes only read, so a cookie is no CSRF risk.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

COOKIE = "mmrag_key"


def _matches(given: str | None, key: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or wrong API key: send 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_key(request: Request) -> None:
    """FastAPI dependency for API routes."""
    key = request.app.state.mmrag.settings.api_key
    if key and not _matches(_bearer(request), key):
        raise _unauthorized()


def require_key_or_cookie(request: Request) -> None:
    """FastAPI dependency for read-only media routes."""
    key = request.app.state.mmrag.settings.api_key
    if key and not (_matches(_bearer(request), key) or _matches(request.cookies.get(COOKIE), key)):
        raise _unauthorized()
