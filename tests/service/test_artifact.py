"""The artifact module refuses anything it cannot verify, and never shows half a write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.artifact import (
    ArtifactError,
    list_versions,
    load_artifact,
    newest_version,
    write_artifact,
)
from tests.conftest import REPO


def only_version(model_dir: Path) -> str:
    (version,) = list_versions(model_dir)
    return version


def edit_metadata(folder: Path, **changes: object) -> None:
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata.update(changes)
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_a_verified_artifact_loads(small_model_dir: Path) -> None:
    artifact = load_artifact(small_model_dir)
    assert artifact.version == only_version(small_model_dir)
    assert set(artifact.thresholds) == {
        "military_loss",
        "civilian_harm",
        "political_statement",
        "forecast",
        "other",
    }


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "model.joblib").write_bytes(b"\x80\x04garbage"), "checksum mismatch"),
        (
            lambda f: (f / "model.joblib").write_bytes((f / "model.joblib").read_bytes()[:1000]),
            "checksum mismatch",
        ),
        (lambda f: (f / "model.joblib").unlink(), "model.joblib is missing"),
        (lambda f: (f / "metadata.json").write_text("{not json"), "not valid JSON"),
        (
            lambda f: edit_metadata(f, libraries={"scikit-learn": "0.24.2"}),
            "written by scikit-learn 0.24.2",
        ),
        (lambda f: edit_metadata(f, thresholds={"other": 0.5}), "threshold between 0 and 1"),
        (
            lambda f: edit_metadata(
                f,
                thresholds=dict.fromkeys(
                    ("military_loss", "civilian_harm", "political_statement", "forecast", "other"),
                    float("nan"),
                ),
            ),
            "threshold between 0 and 1",
        ),
        (lambda f: edit_metadata(f, labels=["a", "b"]), "has labels"),
        (lambda f: edit_metadata(f, format="pickle-of-unknown-origin"), "has format"),
        (lambda f: edit_metadata(f, version="someone-else"), "holds metadata for version"),
    ],
    ids=[
        "garbage",
        "truncated",
        "missing",
        "bad-metadata",
        "sklearn-version",
        "thresholds",
        "nan-thresholds",
        "labels",
        "format",
        "version",
    ],
)
def test_damaged_artifacts_are_refused(model_dir_copy: Path, damage: object, reason: str) -> None:
    version = only_version(model_dir_copy)
    damage(model_dir_copy / version)  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=reason):
        load_artifact(model_dir_copy, version)


def test_another_pickle_with_a_matching_checksum_is_still_not_a_model(model_dir_copy: Path) -> None:
    import joblib

    from service.artifact import sha256_file

    version = only_version(model_dir_copy)
    folder = model_dir_copy / version
    joblib.dump({"not": "a model"}, folder / "model.joblib")
    edit_metadata(folder, model_sha256=sha256_file(folder / "model.joblib"))
    with pytest.raises(ArtifactError, match="does not hold a probabilistic classifier"):
        load_artifact(model_dir_copy, version)


@pytest.mark.parametrize("name", ["../x", "..", ".hidden", "a/b", "/etc/passwd", "", "-rf"])
def test_version_names_outside_the_model_directory_are_refused(
    small_model_dir: Path, name: str
) -> None:
    with pytest.raises(ArtifactError, match="invalid version name"):
        load_artifact(small_model_dir, name)


def test_symlink_escaping_the_model_directory_is_refused(
    model_dir_copy: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "evil").mkdir(parents=True)
    (model_dir_copy / "evil").symlink_to(outside / "evil")
    with pytest.raises(ArtifactError, match="outside the model directory"):
        load_artifact(model_dir_copy, "evil")


def test_writer_killed_mid_write_leaves_nothing_visible(tmp_path: Path) -> None:
    """The process dies while pickling; readers see no artifact and no LATEST."""
    script = f"""
import os
from pathlib import Path
from service.artifact import write_artifact

class DiesWhilePickled:
    def __reduce__(self):
        os._exit(9)

write_artifact(Path({str(tmp_path / "models")!r}), "v1", DiesWhilePickled(), {{}})
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert result.returncode == 9
    models = tmp_path / "models"
    assert [entry.name.startswith(".tmp-v1-") for entry in models.iterdir()] == [True]
    assert list_versions(models) == []
    with pytest.raises(ArtifactError, match="no model artifact"):
        newest_version(models)


def test_write_refuses_to_overwrite_an_existing_version(small_model_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="already exists"):
        write_artifact(small_model_dir, only_version(small_model_dir), object(), {})
