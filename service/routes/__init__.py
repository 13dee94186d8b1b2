"""Thin HTTP routes: parse, call the domain, shape the answer."""

from typing import Any

from service.schemas import Problem

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for status, description in {
        400: "Malformed body: not UTF-8, not JSON, or nested too deeply",
        401: "Missing or invalid API key",
        413: "Request body larger than the limit",
        415: "Content type is not application/json",
        422: "Validation failed; `errors` lists the fields at fault",
        503: "No verified model is loaded",
    }.items()
}
