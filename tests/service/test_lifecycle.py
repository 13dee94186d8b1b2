"""Readiness, reloads and the model files the service is willing to load."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from service.artifact import list_versions
from tests.service.conftest import ClientFactory

ADMIN = {"X-API-Key": "admin-key-0123456789abcdef"}


def second_version(model_dir: Path, name: str = "20991231-000000-cafecafe") -> str:
    """Copy the one artifact under a newer version name (metadata adjusted to match)."""
    (original,) = list_versions(model_dir)
    target = model_dir / name
    shutil.copytree(model_dir / original, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["version"], metadata["created"] = name, "2099-12-31T00:00:00+00:00"
    (target / "metadata.json").write_text(json.dumps(metadata))
    return name


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == client.get("/v1/model").json()["version"]


def test_missing_model_keeps_the_service_up_but_unready(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(model_dir=tmp_path / "empty")
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "no model artifact found" in ready.json()["reason"]
    response = client.post("/v1/classify", json={"sentences": ["Talks resumed."]})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    document = client.post("/v1/classify/document", json={"text": "Talks resumed."})
    assert document.status_code == 503
    # A body that could never be classified is told so even before a model is ready.
    assert client.post("/v1/classify", json={"sentences": []}).status_code == 422


def test_tampered_model_is_refused_at_start(
    make_client: ClientFactory, model_dir_copy: Path
) -> None:
    (version,) = list_versions(model_dir_copy)
    with (model_dir_copy / version / "model.joblib").open("ab") as handle:
        handle.write(b"tampered")
    client = make_client(model_dir=model_dir_copy)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "checksum mismatch" in ready.json()["reason"]


def test_reload_to_a_new_version_and_back(make_client: ClientFactory, model_dir_copy: Path) -> None:
    (first,) = list_versions(model_dir_copy)
    client = make_client(model_dir=model_dir_copy, admin_keys=[ADMIN["X-API-Key"]])
    newer = second_version(model_dir_copy)
    response = client.post("/v1/admin/reload", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"previous": first, "current": newer}
    classified = client.post("/v1/classify", json={"sentences": ["Talks resumed."]}).json()
    assert classified["model"]["version"] == newer
    assert client.get("/v1/model").json()["version"] == newer
    metrics = client.get("/metrics").text
    assert f'sitrep_model_info{{version="{newer}"}} 1.0' in metrics
    assert f'sitrep_model_info{{version="{first}"}} 0.0' in metrics
    back = client.post("/v1/admin/reload", json={"version": first}, headers=ADMIN)
    assert back.json() == {"previous": newer, "current": first}


def test_failed_reload_keeps_the_old_model_and_says_why(
    make_client: ClientFactory, model_dir_copy: Path
) -> None:
    (first,) = list_versions(model_dir_copy)
    client = make_client(model_dir=model_dir_copy, admin_keys=[ADMIN["X-API-Key"]])
    broken = second_version(model_dir_copy)
    (model_dir_copy / broken / "model.joblib").write_bytes(b"not a pickle")
    cases = {
        broken: "checksum mismatch",
        "../etc": "invalid version name",
        "no-such-version": "no artifact named",
    }
    for version, reason in cases.items():
        response = client.post("/v1/admin/reload", json={"version": version}, headers=ADMIN)
        assert response.status_code == 409, version
        assert reason in response.json()["detail"]
        assert str(model_dir_copy) not in response.text
        assert client.get("/v1/model").json()["version"] == first
    assert client.get("/readyz").status_code == 200
    assert 'sitrep_model_reloads_total{outcome="failed"}' in client.get("/metrics").text


def test_metrics_count_requests_labels_and_confidence(client: TestClient) -> None:
    client.post("/v1/classify", json={"sentences": ["Two soldiers were killed by a mine."]})
    text = client.get("/metrics").text
    assert 'sitrep_requests_total{route="/v1/classify",status="200"}' in text
    assert "sitrep_request_duration_seconds_bucket" in text
    assert "sitrep_sentences_classified_total" in text
    assert "sitrep_confidence_bucket" in text
    assert "sitrep_model_info" in text


def test_loaded_model_is_kept_out_of_full_garbage_collections(
    make_client: ClientFactory, model_dir_copy: Path
) -> None:
    """A full collection walks every long-lived object (~70 ms with a model loaded) and stalls
    the requests in flight; loading or swapping a model freezes them out of its way."""
    gc.unfreeze()
    client = make_client(model_dir=model_dir_copy, admin_keys=[ADMIN["X-API-Key"]])
    assert client.get("/readyz").status_code == 200
    assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
    newer = second_version(model_dir_copy)
    assert (
        client.post("/v1/admin/reload", json={"version": newer}, headers=ADMIN).status_code == 200
    )
    assert gc.get_freeze_count() > 10_000
