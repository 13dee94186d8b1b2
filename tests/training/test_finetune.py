"""Fine-tuning the accurate profile's encoder: the weights it starts from and what it gives back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from service.artifact import list_versions, load_artifact
from service.encoder import SentenceEmbedder, TunedWeights, installed_encoder
from service.encoder_graph import quantized_linears, replace_initializers
from service.labels import LABELS
from tests.conftest import needs_accurate_extra, needs_finetune_extra, train_small
from training.train import TrainOptions, train

pytestmark = needs_accurate_extra
SENTENCES = [
    "Two soldiers were killed when their vehicle hit a mine near the river.",
    "The minister condemned the strike on the hospital.",
    "Analysts expect the offensive to stall before winter.",
]


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    import onnx

    return onnx.load(str(installed_encoder().weights)).graph


def test_every_int8_layer_is_found_by_its_bias(graph) -> None:  # type: ignore[no-untyped-def]
    from onnx import TensorProto

    layers = quantized_linears(graph)
    kinds = ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense")  # fmt: skip
    expected = {f"inner.encoder.layer.{n}.{kind}.bias" for n in range(6) for kind in kinds}
    assert set(layers) == expected
    types = {tensor.name: tensor.data_type for tensor in graph.initializer}
    assert {types[layer.weights] for layer in layers.values()} == {TensorProto.INT8}
    assert len({layer.weights for layer in layers.values()}) == len(expected)


def test_replacing_weights_refuses_unknown_names_and_other_shapes(graph) -> None:  # type: ignore[no-untyped-def]
    layer = quantized_linears(graph)["inner.encoder.layer.0.output.dense.bias"]
    with pytest.raises(ValueError, match=r"no initializer 'no\.such\.weight'"):
        replace_initializers(graph, {"no.such.weight": np.zeros(3, np.float32)})
    with pytest.raises(
        ValueError, match=r"is int8 \[1536, 384\] in the graph, got int8 \[384, 384\]"
    ):
        replace_initializers(graph, {layer.weights: np.zeros((384, 384), np.int8)})
    with pytest.raises(ValueError, match=r"is float32 .* got float64"):
        replace_initializers(graph, {layer.bias: np.zeros(384, np.float64)})


@needs_finetune_extra
def test_weights_start_from_the_shipped_graph_and_return_to_its_format() -> None:
    """Dequantized and quantized again, untouched weights come back as the shipped bytes: the
    tuned weights are written the way the shipped file was."""
    from training.finetune import _graph_weights, shipped_encoder

    encoder, linears, shipped = shipped_encoder()
    state = {name: value.numpy() for name, value in encoder.state_dict().items()}
    arrays = _graph_weights(state, linears)
    assert len(arrays) == 36 * 2 + 36 + 6 * 4  # int8 weights and scales, biases, layer norms
    for name, array in arrays.items():
        assert array.dtype == shipped[name].dtype, name
        assert array.shape == shipped[name].shape, name
        if array.dtype == np.int8:
            assert np.abs(array.astype(int) - shipped[name]).max() <= 1, name
        else:
            np.testing.assert_allclose(array, shipped[name], rtol=1e-6, err_msg=name)


@needs_finetune_extra
def test_fine_tuning_starts_from_the_shipped_encoder() -> None:
    """The PyTorch model built from the graph's weights embeds as the shipped file does (up to
    the int8 rounding of the graph's inputs to each layer)."""
    import torch
    from tokenizers import Tokenizer

    from training.finetune import shipped_encoder

    encoder = shipped_encoder()[0]
    encoder.eval()
    tokenizer = Tokenizer.from_file(str(installed_encoder().tokenizer))
    tokenizer.no_padding()
    texts = SENTENCES
    with torch.no_grad():
        pooled = [
            encoder(input_ids=torch.tensor([tokenizer.encode(text).ids]))
            .last_hidden_state[0]
            .mean(0)
            for text in texts
        ]
    mine = np.array([(vector / vector.norm()).numpy() for vector in pooled])
    cosines = np.sum(mine * SentenceEmbedder().transform(texts), axis=1)
    assert cosines.min() > 0.98, cosines


@needs_finetune_extra
def test_a_tuned_encoder_learns_the_labels_and_serves_in_the_shipped_graph(
    small_data: tuple[Path, Path],
) -> None:
    from training.corpus import read_corpus
    from training.finetune import FinetuneSettings, finetune_encoder

    corpus = read_corpus(small_data[0])
    # A higher rate than the default: 300 sentences make 30 steps, not 1,300.
    settings = FinetuneSettings(epochs=3, learning_rate=2e-4)
    tuned = finetune_encoder(
        corpus.texts, corpus.graded_label_matrix(), settings=settings, seed=0, threads=2
    )
    embedded = SentenceEmbedder(tuned=tuned.weights).transform(corpus.texts)
    primary = np.argmax(embedded @ tuned.head_coef.T + tuned.head_intercept, axis=1)
    truth = np.array([LABELS.index(label) for label in corpus.primary_labels])
    # The head, trained on float embeddings, reads the int8 graph's as well.
    assert np.mean(primary == truth) > 0.9
    shipped = SentenceEmbedder().transform(corpus.texts)
    assert np.abs(shipped - embedded).max() > 0.05  # the graph runs the tuned weights


@needs_finetune_extra
def test_the_artifact_carries_the_tuned_weights_and_names_them(accurate_model_dir: Path) -> None:
    artifact = load_artifact(accurate_model_dir)
    fine_tuned = artifact.metadata["encoder"]["fine_tuned"]
    embedder = dict(artifact.estimator.named_steps["features"].transformer_list)["embedding"]
    assert isinstance(embedder.tuned, TunedWeights)
    assert fine_tuned["weights_sha256"] == embedder.tuned.sha256
    assert fine_tuned["epochs"] == 1
    assert fine_tuned["frozen"] == ["embeddings"]
    held_out = artifact.metadata["fusion"]["held_out_examples"]
    assert held_out > 0
    assert set(artifact.metadata["fusion"]["stacker"]) == set(LABELS)
    report = (accurate_model_dir / artifact.version / "report.md").read_text()
    digest = fine_tuned["weights_sha256"][:16]
    assert (
        f"fine-tuned on all but {held_out} of the training sentences for 1 epoch "
        f"(weights SHA-256 `{digest}"
    ) in report
    # The fusion's own scores come from sentences fine-tuning never saw.
    assert f"Held out of fine-tuning (the fusion is fitted here): {held_out} sentences" in report


def test_zero_epochs_keep_the_encoder_as_shipped(
    small_data: tuple[Path, Path], tmp_path: Path
) -> None:
    train_small(tmp_path, *small_data, profile="accurate", finetune_epochs=0)
    artifact = load_artifact(tmp_path)
    embedder = dict(artifact.estimator.named_steps["features"].transformer_list)["embedding"]
    assert embedder.tuned is None
    assert "fine_tuned" not in artifact.metadata["encoder"]


def test_fine_tuning_without_pytorch_fails_before_any_work(
    small_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    steps: list[str] = []
    options = TrainOptions(data=small_data[0], out=tmp_path, profile="accurate")
    with pytest.raises(RuntimeError, match=r"pip install 'sitrep\[finetune\]'"):
        train(options, steps.append)
    assert steps == []
    assert not list_versions(tmp_path)


def test_negative_epochs_are_refused(small_data: tuple[Path, Path], tmp_path: Path) -> None:
    options = TrainOptions(data=small_data[0], out=tmp_path, profile="accurate", finetune_epochs=-1)
    with pytest.raises(ValueError, match="finetune_epochs must be 0 or more, got -1"):
        train(options, lambda _: None)


def test_the_command_line_takes_the_epochs(
    small_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.cli import main

    arguments = ["--data", str(small_data[0]), "--out", str(tmp_path), "--profile", "accurate"]
    assert main([*arguments, "--finetune-epochs", "-2"]) != 0
    assert "finetune_epochs must be 0 or more, got -2" in capsys.readouterr().err
    assert not list_versions(tmp_path)


def test_accurate_artifacts_from_before_fine_tuning_still_load() -> None:
    state = SentenceEmbedder().__getstate__()
    del state["tuned"]  # as pickled before the parameter existed
    embedder = SentenceEmbedder.__new__(SentenceEmbedder)
    embedder.__setstate__(state)
    assert embedder.tuned is None
    assert embedder.get_params() == {"max_tokens": 128, "tuned": None}
