"""The benchmark's baseline: a plain FastAPI endpoint calling predict_proba once per request.

Same model, same workers as the real service, none of its hot-path work (batching, the
precomputed linear path, skipping scikit-learn's per-call validation).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from service.artifact import load_artifact
from service.config import Settings
from service.labels import LABELS


class Body(BaseModel):
    sentences: list[str]


def create_app() -> FastAPI:
    artifact = load_artifact(Settings().resolved_model_dir())  # SITREP_MODEL_DIR, as sitrep
    app = FastAPI()

    @app.post("/v1/classify")
    def classify(body: Body) -> dict[str, object]:
        rows = artifact.estimator.predict_proba(body.sentences)
        return {
            "results": [
                {"text": text, "scores": dict(zip(LABELS, map(float, row), strict=True))}
                for text, row in zip(body.sentences, rows, strict=True)
            ]
        }

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app
