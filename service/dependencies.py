"""Typed dependencies shared by the routes, and `serving` for the classification routes, which
take what they need from the app's state themselves (see `service.body.DirectRoute`).

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a thread pool, and
four thread hops a request cost more than the whole prediction of one sentence.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import Depends, Request

from service.batching import MicroBatcher
from service.body import guard
from service.classifier import Classifier
from service.config import Settings
from service.errors import ModelNotReady
from service.model_store import ModelStore
from service.security import require_admin_key, require_user_key


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_classifier(request: Request) -> Classifier:
    return current_classifier(request)


def current_classifier(request: Request) -> Classifier:
    """The classifier this request will use from start to finish, even if a reload swaps it."""
    classifier: Classifier | None = request.app.state.store.current
    if classifier is None:
        raise ModelNotReady("no verified model is loaded yet; see /readyz and the service log")
    request.state.model_version = classifier.version
    return classifier


class Serving(NamedTuple):
    """What a classification request needs; the three always come together."""

    settings: Settings
    classifier: Classifier
    batcher: MicroBatcher


def serving(request: Request) -> Serving:
    """Settings, classifier and batcher for a classification request; 503 with no model."""
    state = request.app.state
    return Serving(state.settings, current_classifier(request), state.batcher)


StoreDep = Annotated[ModelStore, Depends(get_store)]
ClassifierDep = Annotated[Classifier, Depends(get_classifier)]


@guard
async def user_key(request: Request) -> None:
    require_user_key(request, await get_settings(request))


@guard
async def admin_key(request: Request) -> None:
    require_admin_key(request, await get_settings(request))


async def health_key(request: Request) -> None:
    settings = await get_settings(request)
    if settings.protect_health:
        require_user_key(request, settings)


async def metrics_key(request: Request) -> None:
    settings = await get_settings(request)
    if settings.protect_metrics:
        require_user_key(request, settings)
