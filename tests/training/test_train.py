"""Training end to end: the artifact, its report, reproducibility, and the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.artifact import LATEST_FILE, list_versions, load_artifact
from service.labels import LABELS
from tests.conftest import REPO, texts_of, train_small
from training.cli import main as training_main


def test_artifact_holds_model_metadata_and_report(small_model_dir: Path) -> None:
    (version,) = list_versions(small_model_dir)
    folder = small_model_dir / version
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["labels"] == list(LABELS)
    assert set(metadata["thresholds"]) == set(LABELS)
    assert metadata["libraries"]["scikit-learn"]
    assert len(metadata["data"]["train"]["sha256"]) == 64
    assert len(metadata["model_sha256"]) == 64
    test_metrics = metadata["metrics"]["test"]
    assert 0 <= test_metrics["primary"]["macro_f1"] <= 1
    assert set(test_metrics["primary"]["per_label"]) == set(LABELS)
    assert 0 <= test_metrics["ece"]["per_label_scores"] <= 1
    assert len(metadata["selection"]["candidates"]) == 2
    assert sum(candidate["chosen"] for candidate in metadata["selection"]["candidates"]) == 1
    report = (folder / "report.md").read_text()
    assert "## Test split" in report
    assert "| forecast |" in report
    for image in ("confusion_matrix.png", "reliability.png"):
        assert (folder / image).read_bytes().startswith(b"\x89PNG")
    assert (small_model_dir / LATEST_FILE).read_text().strip() == version


def test_small_model_learns_something(small_model_dir: Path) -> None:
    metadata = load_artifact(small_model_dir).metadata
    # 300 training sentences are enough to beat chance (0.2) by far on the held-out split.
    assert metadata["metrics"]["test"]["primary"]["macro_f1"] > 0.5


def test_same_data_and_seed_give_identical_predictions(
    tmp_path: Path, small_data: tuple[Path, Path], small_model_dir: Path
) -> None:
    # In parallel this time: the number of processes must not change the model.
    again = train_small(tmp_path / "again", small_data[0], jobs=2)
    texts = texts_of(small_data[1])
    first = load_artifact(small_model_dir).estimator.predict_proba(texts)
    second = load_artifact(again.parent, again.name).estimator.predict_proba(texts)
    assert np.array_equal(first, second)


def test_bad_data_writes_nothing_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "Shelling hit Kherson.", "labels": ["civilian"]}\n{"text": ""}\n')
    out = tmp_path / "models"
    status = training_main(["--data", str(data), "--out", str(out)])
    error = capsys.readouterr().err
    assert status == 2
    assert f"{data}:1: unknown label 'civilian'" in error
    assert f"{data}:2: missing field 'labels'" in error
    assert "nothing was written" in error
    assert not out.exists()


def test_test_sentences_that_are_also_training_sentences_are_refused(
    tmp_path: Path, small_data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text(small_data[0].read_text().splitlines()[0] + "\n")
    status = training_main(
        ["--data", str(small_data[0]), "--test", str(leaky), "--out", str(tmp_path / "m")]
    )
    assert status == 2
    assert f"{leaky}:1: also in the training data" in capsys.readouterr().err


def test_sitrep_evaluate_prints_and_writes_json(
    tmp_path: Path, small_model_dir: Path, small_data: tuple[Path, Path]
) -> None:
    out = tmp_path / "metrics.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "evaluate",
            "--model",
            str(small_model_dir),
            "--data",
            str(small_data[1]),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "primary macro-F1" in result.stdout
    for label in LABELS:
        assert label in result.stdout
    metrics = json.loads(out.read_text())
    assert metrics["examples"] == 75
    assert metrics["model"]["version"] == list_versions(small_model_dir)[0]


def test_interrupted_training_leaves_no_visible_artifact(
    tmp_path: Path, small_data: tuple[Path, Path]
) -> None:
    """A training killed mid-run leaves at most a hidden staging directory behind."""
    out = tmp_path / "models"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "training",
            "--data",
            str(small_data[0]),
            "--out",
            str(out),
            "--folds",
            "3",
            "--jobs",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # kill once it is well into the work
        if "cross-validating candidate 2" in line:
            process.kill()
            break
    process.wait(timeout=60)
    process.stderr.close()
    assert list_versions(out) == []
    assert not (out / LATEST_FILE).exists()
