"""Settings for the service, from `SITREP_*` environment variables or `sitrep serve` options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.artifact import bundled_model_dir

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every setting of the service; invalid values stop the service at start with a clear error."""

    model_config = SettingsConfigDict(env_prefix="SITREP_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    model_dir: Path | None = Field(
        default=None, description="directory of model artifacts (default: the bundled models)"
    )
    model_version: str | None = Field(
        default=None, description="version to serve at start (default: the newest)"
    )
    max_sentences: int = Field(default=1_000, ge=1)
    max_sentence_chars: int = Field(default=5_000, ge=1)
    max_document_chars: int = Field(default=200_000, ge=1)
    max_body_bytes: int = Field(default=2 * MiB, ge=1_024)
    body_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="time any request body gets before the rate applies",
    )
    body_min_bytes_per_second: int = Field(
        default=1_024, ge=1, description="slowest average rate a request body may arrive at"
    )
    head_max_bytes: int = Field(
        default=32 * 1_024, ge=1_024, le=MiB, description="largest request line and headers"
    )
    head_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3_600, description="time a request line and headers may take"
    )
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    protect_health: bool = Field(default=False, description="require an API key for health routes")
    protect_metrics: bool = Field(default=False, description="require an API key for /metrics")
    batch_max_sentences: int = Field(default=256, ge=1)
    batch_wait_ms: float = Field(default=1.0, ge=0, le=100)
    big_batches_at_once: int = Field(
        default=2,
        ge=1,
        le=64,
        description="requests of batch_max_sentences or more classified at once in each worker",
    )
    encoder_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="sentences an accurate model encodes at once (default: one per core)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_sentences: bool = Field(default=False, description="log request sentences (debug only)")
    runtime_dir: Path | None = Field(
        default=None, description="shared state of the workers; set by `sitrep serve`"
    )
    state_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key for key in (part.strip() for part in value.split(",")) if key]
        return value

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _keys_are_long_enough(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < 16:
                raise ValueError("every key must have at least 16 characters")
        return keys

    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else bundled_model_dir()
