"""The classification contract: shapes, order, labels consistent with scores and thresholds."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient

from service.labels import LABELS

SENTENCES = [
    "Two soldiers were killed when their armoured vehicle hit a mine near the river.",
    "A missile struck an apartment block, killing nine residents including three children.",
    "The foreign minister condemned the attack and demanded an urgent Security Council meeting.",
    "Analysts expect fighting around the port to intensify once the rains end.",
    "Delegations from both sides met in Geneva on Tuesday.",
]


def test_classify_answers_every_sentence_in_order(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"sentences": SENTENCES})
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["name"] == "sitrep"
    assert body["model"]["version"] == client.get("/v1/model").json()["version"]
    assert [result["text"] for result in body["results"]] == SENTENCES


def test_labels_agree_with_scores_and_thresholds(client: TestClient) -> None:
    thresholds = client.get("/v1/model").json()["thresholds"]
    results = client.post("/v1/classify", json={"sentences": SENTENCES}).json()["results"]
    for result in results:
        scores = result["scores"]
        assert set(scores) == set(LABELS)
        assert all(0.0 <= score <= 1.0 for score in scores.values())
        passing = [label for label in LABELS if scores[label] >= thresholds[label]]
        if not passing or max(passing, key=scores.__getitem__) == "other":
            assert result["labels"] == ["other"]
        else:
            assert result["labels"] == sorted(
                (label for label in passing if label != "other"), key=lambda x: -scores[x]
            )
        assert result["label"] == result["labels"][0]
        assert math.isclose(result["confidence"], scores[result["label"]])


def test_a_batch_gives_each_sentence_the_same_answer_as_alone(client: TestClient) -> None:
    together = client.post("/v1/classify", json={"sentences": SENTENCES}).json()["results"]
    for sentence, result in zip(SENTENCES, together, strict=True):
        alone = client.post("/v1/classify", json={"sentences": [sentence]}).json()["results"][0]
        assert alone["labels"] == result["labels"]
        for label in LABELS:
            assert math.isclose(alone["scores"][label], result["scores"][label], abs_tol=1e-12)


def test_explain_gives_positive_evidence_for_each_label(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"sentences": SENTENCES[:2], "explain": True})
    for result in response.json()["results"]:
        assert set(result["evidence"]) == set(result["labels"])
        for terms in result["evidence"].values():
            assert terms, "every predicted label should have evidence"
            weights = [term["weight"] for term in terms]
            assert all(weight > 0 for weight in weights)
            assert weights == sorted(weights, reverse=True)
            assert all(term["kind"] in {"word", "char"} for term in terms)
    plain = client.post("/v1/classify", json={"sentences": SENTENCES[:1]}).json()["results"][0]
    assert "evidence" not in plain


def test_document_is_split_with_offsets_into_the_input(client: TestClient) -> None:
    text = (
        "Lt. Gen. Ivan Petrov said on Feb. 26 that U.S. aid had slowed.  Two soldiers were "
        "killed near the bridge.\n\nThe U.N. envoy will arrive on Monday."
    )
    body = client.post("/v1/classify/document", json={"text": text}).json()
    sentences = body["sentences"]
    assert [s["text"] for s in sentences] == [
        "Lt. Gen. Ivan Petrov said on Feb. 26 that U.S. aid had slowed.",
        "Two soldiers were killed near the bridge.",
        "The U.N. envoy will arrive on Monday.",
    ]
    for sentence in sentences:
        assert text[sentence["start"] : sentence["end"]] == sentence["text"]
        assert sentence["label"] == sentence["labels"][0]
    assert sum(body["counts"].values()) == 3
    assert set(body["counts"]) == set(LABELS)


def test_model_info_reports_provenance_and_test_metrics(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["labels"] == list(LABELS)
    assert set(info["thresholds"]) == set(LABELS)
    assert len(info["data_sha256"]) == 64
    assert info["libraries"]["scikit-learn"]
    assert 0 < info["metrics"]["test"]["primary"]["macro_f1"] <= 1
    assert info["profile"] == "fast"


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/classify",
        "/v1/classify/document",
        "/v1/model",
        "/v1/admin/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(schema["paths"])
    components = schema["components"]["schemas"]
    for name in (
        "ClassifyRequest",
        "ClassifyResponse",
        "DocumentRequest",
        "DocumentResponse",
        "ModelInfo",
        "ReloadResponse",
        "Problem",
        "Health",
    ):
        assert components[name].get("examples"), f"{name} has no example"
    assert client.get("/docs").status_code == 200
