from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(small_model_dir: Path) -> Iterator[ClientFactory]:
    """Open TestClients (lifespan included) on the small model, with settings overrides."""
    opened: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        settings = Settings(**{"model_dir": small_model_dir, **overrides})
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
