"""The one place that writes and reads model artifacts.

An artifact is a directory `<model_dir>/<version>/` holding `model.joblib` (the fitted
scikit-learn pipeline) and `metadata.json` (format, versions, checksums, thresholds, metrics).
A joblib file is code: it is unpickled only after its SHA-256 matches the metadata, only from
inside the configured model directory, and only under the scikit-learn version that wrote it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import numpy
import scipy
import sklearn

from service.checksums import sha256_file
from service.encoder import EncoderUnavailableError, installed_encoder
from service.labels import LABELS

FORMAT = "sitrep-artifact/1"
# fast: TF-IDF n-grams. accurate: TF-IDF n-grams and sentence embeddings (service/encoder.py),
# which need `pip install 'sitrep[accurate]'`.
PROFILES = ("fast", "accurate")
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
LATEST_FILE = "LATEST"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ArtifactError(Exception):
    """An artifact is missing, malformed, tampered with, or incompatible with this install."""


@dataclass(frozen=True)
class ModelArtifact:
    """A verified, loaded model and the metadata it was stamped with."""

    version: str
    path: Path
    metadata: dict[str, Any]
    estimator: Any

    @property
    def thresholds(self) -> dict[str, float]:
        return {label: float(self.metadata["thresholds"][label]) for label in LABELS}

    @property
    def profile(self) -> str:
        return str(self.metadata.get("profile", "fast"))


def bundled_model_dir() -> Path:
    """The model directory shipped inside the package (the repo's `models/`)."""
    return Path(str(resources.files("sitrep_models")))


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def new_version(data_sha256: str, now: datetime | None = None) -> str:
    """A sortable version name: UTC time of training plus the start of the data hash."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{data_sha256[:8]}"


def write_artifact(
    model_dir: Path,
    version: str,
    estimator: Any,
    metadata: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write an artifact atomically and point `LATEST` at it.

    Everything goes into a hidden temporary directory first, which is renamed into place only
    when complete, so a reader never sees a half-written artifact (readers skip hidden names).
    """
    _check_version_name(version)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / version
    if final.exists():
        raise ArtifactError(f"artifact {version!r} already exists in {model_dir}")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        joblib.dump(estimator, staging / MODEL_FILE, compress=3)
        stamped = {
            "format": FORMAT,
            "name": "sitrep",
            "version": version,
            "labels": list(LABELS),
            "libraries": library_versions(),
            **metadata,
            "model_sha256": sha256_file(staging / MODEL_FILE),
        }
        (staging / METADATA_FILE).write_text(json.dumps(stamped, indent=2) + "\n")
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        for item in staging.iterdir():
            _fsync(item)
        staging.chmod(0o755)  # mkdtemp makes it private; a service may run as another user
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    latest_tmp = model_dir / f".{LATEST_FILE}.tmp"
    latest_tmp.write_text(version + "\n")
    os.replace(latest_tmp, model_dir / LATEST_FILE)
    return final


def list_versions(model_dir: Path) -> list[str]:
    """Complete artifacts in a model directory (hidden, temporary names are skipped)."""
    if not model_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in model_dir.iterdir()
        if entry.is_dir()
        and VERSION_PATTERN.match(entry.name)
        and (entry / METADATA_FILE).is_file()
    )


def newest_version(model_dir: Path) -> str:
    """The most recently trained artifact, by the time stamped in its metadata."""
    stamped: list[tuple[str, str]] = []
    for version in list_versions(model_dir):
        try:
            created = str(read_metadata(model_dir / version).get("created", ""))
        except ArtifactError:
            continue
        stamped.append((created, version))
    if not stamped:
        raise ArtifactError("no model artifact found in the model directory")
    return max(stamped)[1]


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{METADATA_FILE} is missing in artifact {path.name!r}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{METADATA_FILE} of artifact {path.name!r} is not valid JSON") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{METADATA_FILE} of artifact {path.name!r} is not a JSON object")
    return metadata


def load_artifact(model_dir: Path, version: str | None = None) -> ModelArtifact:
    """Verify and load one artifact; the newest when no version is named."""
    chosen = version if version is not None else newest_version(model_dir)
    path = _artifact_path(model_dir, chosen)
    metadata = read_metadata(path)
    _verify_metadata(metadata, chosen)
    model_file = path / MODEL_FILE
    if not model_file.is_file():
        raise ArtifactError(f"{MODEL_FILE} is missing in artifact {chosen!r}")
    actual = sha256_file(model_file)
    if actual != metadata["model_sha256"]:
        raise ArtifactError(
            f"checksum mismatch for artifact {chosen!r}: {MODEL_FILE} has SHA-256 {actual[:12]}…, "
            f"metadata expects {str(metadata['model_sha256'])[:12]}…; refusing to load it"
        )
    try:
        estimator = joblib.load(model_file)
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ArtifactError(
            f"{MODEL_FILE} of artifact {chosen!r} could not be loaded: {exc}"
        ) from exc
    if not hasattr(estimator, "predict_proba"):
        raise ArtifactError(f"artifact {chosen!r} does not hold a probabilistic classifier")
    return ModelArtifact(version=chosen, path=path, metadata=metadata, estimator=estimator)


def _artifact_path(model_dir: Path, version: str) -> Path:
    _check_version_name(version)
    root = model_dir.resolve()
    path = (root / version).resolve()
    if path.parent != root:
        raise ArtifactError(f"version {version!r} is outside the model directory")
    if not path.is_dir():
        raise ArtifactError(f"no artifact named {version!r} in the model directory")
    return path


def _check_version_name(version: str) -> None:
    if not VERSION_PATTERN.match(version):
        raise ArtifactError(
            f"invalid version name {version!r}: use letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-'"
        )


def _verify_metadata(metadata: dict[str, Any], version: str) -> None:
    if metadata.get("format") != FORMAT:
        raise ArtifactError(
            f"artifact {version!r} has format {metadata.get('format')!r}, expected {FORMAT!r}"
        )
    if metadata.get("version") != version:
        raise ArtifactError(
            f"artifact directory {version!r} holds metadata for version {metadata.get('version')!r}"
        )
    if metadata.get("labels") != list(LABELS):
        raise ArtifactError(
            f"artifact {version!r} has labels {metadata.get('labels')!r}, expected {list(LABELS)!r}"
        )
    thresholds = metadata.get("thresholds")
    if not isinstance(thresholds, dict) or not all(
        isinstance(thresholds.get(label), int | float) and 0.0 <= thresholds[label] <= 1.0
        for label in LABELS
    ):
        raise ArtifactError(
            f"artifact {version!r} lacks a threshold between 0 and 1 for every label"
        )
    if not isinstance(metadata.get("model_sha256"), str):
        raise ArtifactError(f"artifact {version!r} has no model checksum in its metadata")
    trained_with = metadata.get("libraries", {}).get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"artifact {version!r} was written by scikit-learn {trained_with}, but scikit-learn "
            f"{sklearn.__version__} is installed; install scikit-learn=={trained_with} or retrain"
        )
    profile = metadata.get("profile", "fast")
    if profile not in PROFILES:
        raise ArtifactError(
            f"artifact {version!r} has profile {profile!r}, expected one of {', '.join(PROFILES)}"
        )
    if profile == "accurate":
        _verify_encoder(metadata.get("encoder"), version)


def _verify_encoder(expected: Any, version: str) -> None:
    """An accurate artifact runs only on the encoder files it was trained with."""
    if not isinstance(expected, dict):
        raise ArtifactError(f"artifact {version!r} uses the accurate profile but names no encoder")
    try:
        installed = installed_encoder()
    except EncoderUnavailableError as error:
        raise ArtifactError(f"artifact {version!r} cannot be served: {error}") from error
    wanted = f"{expected.get('package')}=={expected.get('version')}"
    if (expected.get("package"), expected.get("version")) != (installed.package, installed.version):
        raise ArtifactError(
            f"artifact {version!r} was trained with the encoder {wanted}, but "
            f"{installed.package}=={installed.version} is installed; install {wanted} or retrain"
        )
    if expected.get("weights_sha256") != installed.weights_sha256:
        raise ArtifactError(
            f"the installed weights of {installed.package} {installed.version} have SHA-256 "
            f"{installed.weights_sha256[:12]}…, but artifact {version!r} expects "
            f"{str(expected.get('weights_sha256'))[:12]}…; reinstall {wanted} or retrain"
        )
    tokenizer = expected.get("tokenizer")
    tokenizer = tokenizer if isinstance(tokenizer, dict) else {}
    if tokenizer.get("sha256") != installed.tokenizer_sha256:
        needed = f"{installed.tokenizer_package}=={tokenizer.get('version')}"
        raise ArtifactError(
            f"the installed tokenizer of {installed.tokenizer_package} "
            f"{installed.tokenizer_version} has SHA-256 {installed.tokenizer_sha256[:12]}…, but "
            f"artifact {version!r} expects {str(tokenizer.get('sha256'))[:12]}…; install {needed} "
            "or retrain"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
