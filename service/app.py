"""create_app(): settings, lifespan (model loading), middleware, routers, error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service import __version__
from service.allocator import keep_freed_memory
from service.batching import MicroBatcher
from service.collector import collect_less_often
from service.config import Settings
from service.encoder import set_thread_count
from service.errors import install_error_handlers
from service.middleware import GuardedHttpProtocol, Limits, RequestContextMiddleware
from service.model_store import ModelStore
from service.observability import configure_logging
from service.routes import admin, classify, health, model

DESCRIPTION = """Labels sentences of war and conflict reporting as `military_loss`, `civilian_harm`,
`political_statement`, `forecast` or `other`, with calibrated scores. Every answer names the model
version that produced it; every error is `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the model is loaded when the lifespan starts, not at import."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_thread_count(settings.encoder_threads)  # before the first accurate model loads
        keep_freed_memory()  # in every worker: big batches reuse memory instead of faulting
        collect_less_often()  # a worker serves until it exits: nothing to restore
        store = ModelStore(settings.resolved_model_dir(), settings.runtime_dir)
        await asyncio.to_thread(store.load_initial, settings.model_version)
        batcher = MicroBatcher(
            max_sentences=settings.batch_max_sentences,
            wait_seconds=settings.batch_wait_ms / 1000,
            max_big_batches=settings.big_batches_at_once,
        )
        batcher.start()
        app.state.store, app.state.batcher = store, batcher
        follower = asyncio.create_task(store.follow_shared_version(settings.state_poll_seconds))
        _reload_on_sighup(store)
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await batcher.stop()

    app = FastAPI(
        title="sitrep",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    limits = Limits.from_settings(settings)
    GuardedHttpProtocol.limits = limits  # the protocol of the server this worker runs
    app.add_middleware(
        RequestContextMiddleware,
        limits=limits,
        log_sentences=settings.log_sentences,
    )
    install_error_handlers(app)
    for router in (classify.router, model.router, admin.router, health.router):
        app.include_router(router)
    return app


def _reload_on_sighup(store: ModelStore) -> None:
    """SIGHUP reloads the newest model, like POST /v1/admin/reload without a body."""
    loop = asyncio.get_running_loop()

    pending: set[asyncio.Task[None]] = set()

    def schedule() -> None:
        task = loop.create_task(_reload_newest(store))
        pending.add(task)  # keep a reference until it finishes
        task.add_done_callback(pending.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, schedule)


async def _reload_newest(store: ModelStore) -> None:
    with contextlib.suppress(Exception):  # logged by the store; the old model keeps serving
        await store.reload(None)
