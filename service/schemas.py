"""Request and response models: the HTTP contract, with its limits and OpenAPI examples."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from service.config import Settings
from service.labels import LABELS

EXAMPLE_SENTENCE = "A missile hit a hospital in Kharkiv overnight, killing four patients."
EXAMPLE_SCORES: dict[str, Any] = {
    "military_loss": 0.02,
    "civilian_harm": 0.97,
    "political_statement": 0.04,
    "forecast": 0.01,
    "other": 0.02,
}
Label = Annotated[str, Field(json_schema_extra={"enum": list(LABELS)})]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain text, not only whitespace")
    return text


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"sentences": [EXAMPLE_SENTENCE], "explain": False}]},
    )

    sentences: list[StrictStr] = Field(
        min_length=1, description="sentences to classify (default limit: 1,000 a request)"
    )
    explain: StrictBool = Field(
        default=False, description="add the n-grams that raised each label's score"
    )

    @field_validator("sentences")
    @classmethod
    def _sentences_have_text(cls, sentences: list[str]) -> list[str]:
        blank = [index for index, text in enumerate(sentences) if not text.strip()]
        if blank:
            raise ValueError(f"sentences at positions {blank[:10]} are empty or whitespace")
        return sentences


class DocumentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Lt. Gen. Petrov said on Feb. 26 that U.S. aid was late. "
                    "Two soldiers were killed near the bridge.",
                    "explain": False,
                }
            ]
        },
    )

    text: StrictStr = Field(min_length=1, description="a document; split into sentences")
    explain: StrictBool = False

    @field_validator("text")
    @classmethod
    def _text_is_not_blank(cls, text: str) -> str:
        return _not_blank(text)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": None}]})

    version: StrictStr | None = Field(
        default=None, description="artifact version to load (default: the newest)"
    )


class ModelRef(BaseModel):
    name: str = Field(examples=["sitrep"])
    version: str = Field(examples=["20261127-140000-1a2b3c4d"])


class EvidenceTerm(BaseModel):
    term: str = Field(description="a word n-gram or character n-gram", examples=["hospital"])
    kind: str = Field(description="'word' or 'char'", examples=["word"])
    weight: float = Field(description="contribution to the label's calibrated log-odds")


class SentenceResult(BaseModel):
    text: str
    label: Label = Field(description="the primary label: labels[0]")
    confidence: float = Field(ge=0, le=1, description="the score of the primary label")
    labels: list[Label] = Field(description="every label at or above its threshold, highest first")
    scores: dict[str, float] = Field(description="calibrated probability of every label")
    evidence: dict[str, list[EvidenceTerm]] | None = Field(
        default=None, description="with explain: the n-grams that raised each label's score"
    )


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "sitrep", "version": "20261127-140000-1a2b3c4d"},
                    "results": [
                        {
                            "text": EXAMPLE_SENTENCE,
                            "label": "civilian_harm",
                            "confidence": 0.97,
                            "labels": ["civilian_harm"],
                            "scores": EXAMPLE_SCORES,
                        }
                    ],
                }
            ]
        }
    )

    model: ModelRef
    results: list[SentenceResult]


class DocumentSentence(SentenceResult):
    start: int = Field(ge=0, description="offset of the sentence's first character in the input")
    end: int = Field(ge=0, description="offset just past the sentence's last character")


class DocumentResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "sitrep", "version": "20261127-140000-1a2b3c4d"},
                    "sentences": [
                        {
                            "text": "Two soldiers were killed near the bridge.",
                            "start": 0,
                            "end": 41,
                            "label": "military_loss",
                            "confidence": 0.98,
                            "labels": ["military_loss"],
                            "scores": {
                                **EXAMPLE_SCORES,
                                "military_loss": 0.98,
                                "civilian_harm": 0.03,
                            },
                        }
                    ],
                    "counts": {
                        "military_loss": 1,
                        "civilian_harm": 0,
                        "political_statement": 0,
                        "forecast": 0,
                        "other": 0,
                    },
                }
            ]
        }
    )

    model: ModelRef
    sentences: list[DocumentSentence]
    counts: dict[str, int] = Field(description="sentences per primary label")


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "sitrep",
                    "version": "20261127-140000-1a2b3c4d",
                    "profile": "fast",
                    "labels": list(LABELS),
                    "thresholds": dict.fromkeys(LABELS, 0.5),
                    "created": "2026-11-27T14:00:00+00:00",
                    "data_sha256": "1a2b3c4d…",
                    "libraries": {"scikit-learn": "1.9.1"},
                    "metrics": {"test": {"primary": {"macro_f1": 0.9}}},
                }
            ]
        }
    )

    name: str
    version: str
    profile: str
    labels: list[str]
    thresholds: dict[str, float]
    created: str
    data_sha256: str | None
    libraries: dict[str, str]
    metrics: dict[str, Any] = Field(description="test metrics from the artifact's metadata")


class ReloadResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"previous": "20261101-090000-0f0f0f0f", "current": "20261127-140000-1a2b3c4d"}
            ]
        }
    )

    previous: str | None
    current: str


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "model_version": "20261127-140000-1a2b3c4d"}]
        }
    )

    status: str
    model_version: str | None = None
    reason: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://sitrep.dev/problems/validation",
                    "title": "Request validation failed",
                    "status": 422,
                    "detail": "1 invalid field: body.sentences",
                    "errors": [
                        {
                            "loc": ["body", "sentences"],
                            "msg": "List should have at least 1 item after validation, not 0",
                            "type": "too_short",
                        }
                    ],
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def enforce_classify_limits(request: ClassifyRequest, settings: Settings) -> None:
    """Limits that depend on configuration, reported like any other validation error."""
    errors: list[dict[str, Any]] = []
    if len(request.sentences) > settings.max_sentences:
        errors.append(
            _limit_error(
                ["body", "sentences"],
                f"at most {settings.max_sentences} sentences a request, "
                f"got {len(request.sentences)}",
            )
        )
    for index, text in enumerate(request.sentences):
        if len(text) > settings.max_sentence_chars:
            errors.append(
                _limit_error(
                    ["body", "sentences", index],
                    f"at most {settings.max_sentence_chars} characters a sentence, got {len(text)}",
                )
            )
            if len(errors) >= 20:
                break
    if errors:
        raise RequestValidationError(errors)


def enforce_document_limits(request: DocumentRequest, settings: Settings) -> None:
    if len(request.text) > settings.max_document_chars:
        raise RequestValidationError(
            [
                _limit_error(
                    ["body", "text"],
                    f"at most {settings.max_document_chars} characters a "
                    f"document, got {len(request.text)}",
                )
            ]
        )


def _limit_error(loc: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "limit_exceeded"}
