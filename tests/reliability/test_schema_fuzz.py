"""Schema fuzzing (Schemathesis): requests generated from the service's own OpenAPI schema, valid
and invalid, sent to a real server. No answer is a 5xx; every answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.config import Settings
from tests.reliability.conftest import ADMIN_KEY, record_figure
from tests.service.server import ServerProcess

pytestmark = pytest.mark.slow
# The schema the service publishes at /openapi.json; building the app does not load a model.
schema = schemathesis.openapi.from_dict(create_app(Settings(model_dir=Path("unused"))).openapi())
SENT: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzzed_server(
    small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with ServerProcess(log_path=log, model_dir=small_model_dir, admin_keys=ADMIN_KEY) as server:
        yield server
        assert '"status": 500' not in server.log()
    record_figure(
        "schema fuzzing",
        f"{sum(SENT.values())} generated requests on {len(SENT)} operations "
        f"({', '.join(f'{name}: {sent}' for name, sent in SENT.items())}), 0 failures",
    )


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_generated_requests_per_its_schema(
    case: schemathesis.Case, fuzzed_server: ServerProcess
) -> None:
    SENT[case.operation.label] = SENT.get(case.operation.label, 0) + 1
    case.call_and_validate(
        base_url=fuzzed_server.url,
        headers={"X-API-Key": ADMIN_KEY},
        timeout=60,
        # The schema cannot state every rule of a valid request: sentences of only whitespace,
        # and limits set by configuration (sentences a request, characters a sentence) are
        # refused with a 422 that names the field, which tests/service/test_errors.py checks.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
