"""Domain errors carry their HTTP status; one handler turns them into RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://sitrep.dev/problems/"


class SitrepError(StarletteHTTPException):
    """Base of every error the service answers with; subclasses set status and title.

    It derives from Starlette's HTTPException so that it passes unchanged through the places
    where FastAPI wraps other exceptions (reading the request body, for one).
    """

    status = 500
    title = "Internal error"
    slug = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=self.status, detail=detail, headers=headers)


class InvalidBody(SitrepError):
    status, title, slug = 400, "Malformed request body", "invalid-body"


class Unauthorized(SitrepError):
    status, title, slug = 401, "Missing or invalid API key", "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="sitrep"'})


class Forbidden(SitrepError):
    status, title, slug = 403, "Forbidden", "forbidden"


class RequestTimeout(SitrepError):
    status, title, slug = 408, "Request not received in time", "request-timeout"

    def __init__(self, detail: str) -> None:
        # The rest of the request may still be on its way: only a new connection is clean.
        super().__init__(detail, headers={"Connection": "close"})


class PayloadTooLarge(SitrepError):
    status, title, slug = 413, "Request body too large", "payload-too-large"


class UnsupportedMediaType(SitrepError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class LimitExceeded(SitrepError):
    status, title, slug = 422, "Request exceeds a limit", "limit-exceeded"


class ModelNotReady(SitrepError):
    status, title, slug = 503, "No model loaded", "model-not-ready"


class ReloadFailed(SitrepError):
    status, title, slug = (
        409,
        "Model reload failed; the previous model keeps serving",
        "reload-failed",
    )


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the service as problem+json; none echoes the request or a traceback."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        if isinstance(error, SitrepError):
            return problem_response(
                error.status, error.title, str(error.detail), slug=error.slug, headers=headers
            )
        # Routing errors (404, 405) and anything else Starlette raised.
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
        return problem_response(
            error.status_code,
            title,
            str(error.detail),
            slug=title.lower().replace(" ", "-"),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        fields = ", ".join(".".join(str(part) for part in item["loc"]) for item in errors)
        return problem_response(
            422,
            "Request validation failed",
            f"{len(errors)} invalid field{'s' if len(errors) != 1 else ''}: {fields}",
            slug="validation",
            errors=errors,
        )

    # Unexpected errors are answered by RequestContextMiddleware, with the request id.
