"""GET /v1/model."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.dependencies import ClassifierDep, user_key
from service.routes import PROBLEMS
from service.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(user_key)])


@router.get("/model", response_model=ModelInfo, responses=PROBLEMS)
async def model_info(classifier: ClassifierDep) -> ModelInfo:
    """The served model: version, labels, thresholds, provenance and test metrics."""
    metadata = classifier.artifact.metadata
    return ModelInfo(
        name=metadata.get("name", "sitrep"),
        version=classifier.version,
        profile=metadata.get("profile", "fast"),
        labels=metadata["labels"],
        thresholds=classifier.thresholds,
        created=metadata.get("created", ""),
        data_sha256=metadata.get("data", {}).get("train", {}).get("sha256"),
        libraries=metadata.get("libraries", {}),
        metrics={"test": metadata.get("metrics", {}).get("test")},
    )
