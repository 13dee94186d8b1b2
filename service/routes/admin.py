"""POST /v1/admin/reload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from service.artifact import ArtifactError
from service.body import JSONBodyRoute
from service.dependencies import StoreDep, admin_key
from service.errors import ReloadFailed
from service.routes import PROBLEMS
from service.schemas import ReloadRequest, ReloadResponse

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], route_class=JSONBodyRoute, dependencies=[Depends(admin_key)]
)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        **PROBLEMS,
        403: PROBLEMS[401] | {"description": "Admin API disabled"},
        409: PROBLEMS[401] | {"description": "Reload failed; the old model serves on"},
    },
)
async def reload_model(
    store: StoreDep, body: Annotated[ReloadRequest | None, Body()] = None
) -> ReloadResponse:
    """Load, verify and swap in a model (default: the newest); keep the old one on failure."""
    try:
        outcome = await store.reload(body.version if body else None)
    except (ArtifactError, ValueError) as error:
        raise ReloadFailed(str(error)) from error
    return ReloadResponse(previous=outcome.previous, current=outcome.current)
