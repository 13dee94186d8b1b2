"""Fine-tune the accurate profile's sentence encoder on the training sentences.

The shipped encoder (service/encoder.py) was trained to place sentences of similar meaning near
each other, not to tell a loss from a threat. Here its six transformer layers learn the labels:
a linear head on the mean-pooled, L2-normalised embedding is trained with the encoder. The
accurate profile tunes it on most of the training data and fuses the head's logits with the
fast model's scores on the rest (training/fusion.py; docs/decisions/0001-sentence-encoder.md has
the figures of the ways compared).

- **Where the weights start.** From the shipped int8 graph itself, dequantized, so nothing else
  is downloaded and the tuned weights fit that graph by construction. The token, position and
  segment embeddings stay frozen: the artifact then carries the six layers only (about 11 MB of
  int8 weights instead of 23 MB).
- **What is learned.** Every gold label (binary cross-entropy) and which label is primary
  (softmax cross-entropy), mirroring the primary-label weighting of training/estimator.py.
- **What is kept.** Each layer's weights are quantized back to int8 the way the shipped file is
  (symmetric, one scale per output column), so the service runs them in the same rewritten graph
  (service/encoder_graph.py) at the same speed.

PyTorch and transformers are needed here only: `pip install 'sitrep[finetune]'`. Serving a tuned
model needs the accurate extra and nothing more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

from service.encoder import DIMENSION, TunedWeights, installed_encoder
from service.encoder_graph import QuantizedLinear, quantized_linears
from service.labels import LABELS
from training.estimator import PRIMARY

INSTALL_HINT = "fine-tuning the encoder needs PyTorch: pip install 'sitrep[finetune]'"
GRAPH_PREFIX = "inner."  # the shipped graph's names for the model's parameters
# all-MiniLM-L6-v2; the graph's shapes are checked against these when the weights are loaded.
ATTENTION_HEADS = 12
LAYER_NORM_EPS = 1e-12
# Cosine similarities lie in [-1, 1]; the head sees the unit embedding scaled up so that its
# logits can reach confident values without huge weights.
HEAD_INPUT_SCALE = 10.0

Progress = Callable[[str], None]


class FinetuneUnavailableError(RuntimeError):
    """PyTorch or transformers is missing from this install."""


@dataclass(frozen=True, kw_only=True)
class FinetuneSettings:
    """How the encoder is fine-tuned. Fixed before any result was seen (decision 0001)."""

    epochs: int = 3
    learning_rate: float = 4e-5
    batch_size: int = 32
    warmup_share: float = 0.06
    weight_decay: float = 0.01
    max_tokens: int = 128

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class FinetunedEncoder:
    """The tuned encoder's weights, and the linear head it was tuned with: per-label logits are
    `embeddings @ head_coef.T + head_intercept` on the L2-normalised embeddings."""

    weights: TunedWeights
    head_coef: npt.NDArray[np.float64]  # (labels, 384)
    head_intercept: npt.NDArray[np.float64]  # (labels,)


def finetune_encoder(
    texts: Sequence[str],
    graded: npt.NDArray[np.int_],
    *,
    settings: FinetuneSettings,
    seed: int,
    threads: int,
    progress: Progress = lambda _: None,
) -> FinetunedEncoder:
    """Fine-tune the shipped encoder on `texts` and their graded labels (PRIMARY, SECONDARY or
    ABSENT per label, as Corpus.graded_label_matrix gives)."""
    torch = torch_modules()[0]
    from tokenizers import Tokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    encoder, linears, _ = shipped_encoder()
    for parameter in encoder.embeddings.parameters():
        parameter.requires_grad_(False)
    head = torch.nn.Linear(DIMENSION, len(LABELS))
    trained = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(
        trained, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    batches_per_epoch = math.ceil(len(texts) / settings.batch_size)
    steps = settings.epochs * batches_per_epoch
    warmup = max(1, int(settings.warmup_share * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )

    tokenizer = Tokenizer.from_file(str(installed_encoder().tokenizer))
    tokenizer.enable_truncation(max_length=settings.max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
    grades = np.asarray(graded)
    members = torch.from_numpy((grades > 0).astype(np.float32))
    primary = torch.from_numpy(np.argmax(grades == PRIMARY, axis=1))
    order_of = np.random.default_rng(seed)

    encoder.train()
    started, step = time.perf_counter(), 0
    for epoch in range(settings.epochs):
        order = order_of.permutation(len(texts))
        for start in range(0, len(order), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            encoded = tokenizer.encode_batch([texts[row] for row in rows])
            ids = torch.tensor([item.ids for item in encoded])
            mask = torch.tensor([item.attention_mask for item in encoded])
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            logits = head(torch.nn.functional.normalize(pooled, dim=-1) * HEAD_INPUT_SCALE)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, members[rows]
            ) + torch.nn.functional.cross_entropy(logits, primary[rows])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0 or step == steps:
                elapsed = time.perf_counter() - started
                progress(
                    f"  fine-tuning: epoch {epoch + 1}/{settings.epochs}, step {step}/{steps}, "
                    f"loss {loss.item():.3f}, {elapsed:.0f}s, about "
                    f"{elapsed / step * (steps - step):.0f}s left"
                )
    state = {name: value.detach().numpy() for name, value in encoder.state_dict().items()}
    return FinetunedEncoder(
        weights=TunedWeights(arrays=_graph_weights(state, linears)),
        head_coef=head.weight.detach().numpy().astype(np.float64) * HEAD_INPUT_SCALE,
        head_intercept=head.bias.detach().numpy().astype(np.float64),
    )


def shipped_encoder() -> tuple[Any, dict[str, QuantizedLinear], dict[str, np.ndarray[Any, Any]]]:
    """The shipped encoder as a PyTorch `BertModel`, its int8 weights dequantized; with the
    graph's int8 layers (by bias name) and all its initializers."""
    torch, bert_model, bert_config = torch_modules()
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(installed_encoder().weights)).graph
    shipped = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    linears = quantized_linears(graph)
    encoder = bert_model(_config(bert_config, shipped, len(linears)), add_pooling_layer=False)
    encoder.load_state_dict(_float_weights(torch, encoder, shipped, linears), strict=True)
    return encoder, linears, shipped


def torch_modules() -> tuple[Any, Any, Any]:
    """torch, and transformers' BertModel and BertConfig; FinetuneUnavailableError when missing."""
    try:
        import torch
        from transformers import BertConfig, BertModel
    except ImportError as error:
        raise FinetuneUnavailableError(f"{error.name} is not installed; {INSTALL_HINT}") from error
    return torch, BertModel, BertConfig


def _config(bert_config: Any, shipped: dict[str, np.ndarray[Any, Any]], layers: int) -> Any:
    """all-MiniLM-L6-v2's configuration, its sizes read off the shipped graph."""
    vocabulary, hidden = shipped[f"{GRAPH_PREFIX}embeddings.word_embeddings.weight_q"].shape
    positions = shipped[f"{GRAPH_PREFIX}embeddings.position_embeddings.weight_q"].shape[0]
    segments = shipped[f"{GRAPH_PREFIX}embeddings.token_type_embeddings.weight"].shape[0]
    intermediate = shipped[f"{GRAPH_PREFIX}encoder.layer.0.intermediate.dense.bias"].shape[0]
    if hidden != DIMENSION or layers % 6:
        raise ValueError(f"unexpected encoder graph: width {hidden}, {layers} int8 layers")
    return bert_config(
        vocab_size=vocabulary,
        hidden_size=hidden,
        num_hidden_layers=layers // 6,  # query, key, value, output, intermediate, output
        num_attention_heads=ATTENTION_HEADS,
        intermediate_size=intermediate,
        max_position_embeddings=positions,
        type_vocab_size=segments,
        layer_norm_eps=LAYER_NORM_EPS,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def _float_weights(
    torch: Any,
    encoder: Any,
    shipped: dict[str, np.ndarray[Any, Any]],
    linears: dict[str, QuantizedLinear],
) -> dict[str, Any]:
    """The encoder's state dict from the shipped graph, int8 weights dequantized."""
    by_weight = {_weight_name(layer): layer for layer in linears.values()}
    state = {}
    for name, parameter in encoder.state_dict().items():
        graph_name = GRAPH_PREFIX + name
        if name in by_weight:
            layer = by_weight[name]
            value = (shipped[layer.weights].astype(np.float32) * shipped[layer.scale]).T
        elif f"{graph_name}_q" in shipped:  # token and position embeddings: a scale per row
            value = shipped[f"{graph_name}_q"].astype(np.float32) * shipped[f"{graph_name}_scale"]
        elif graph_name in shipped:
            value = shipped[graph_name]
        else:
            raise ValueError(f"the encoder graph has no weights for {name!r}")
        if tuple(value.shape) != tuple(parameter.shape):
            raise ValueError(f"{name}: graph {value.shape}, model {tuple(parameter.shape)}")
        state[name] = torch.tensor(
            value, dtype=parameter.dtype
        )  # a copy: the graph's are read-only
    return state


def _weight_name(layer: QuantizedLinear) -> str:
    """The PyTorch name of a linear layer's weight matrix, from its bias's name in the graph."""
    return layer.bias.removeprefix(GRAPH_PREFIX).removesuffix("bias") + "weight"


def _graph_weights(
    state: dict[str, np.ndarray[Any, Any]], linears: dict[str, QuantizedLinear]
) -> dict[str, np.ndarray[Any, Any]]:
    """The trained layers as the graph's initializers: int8 weights, one scale per output column
    (as shipped), and float biases and layer norms. The frozen embeddings are left out."""
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for layer in linears.values():
        weight = state[_weight_name(layer)].T  # (inputs, outputs), as in the graph
        scale = np.abs(weight).max(axis=0, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        arrays[layer.weights] = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        arrays[layer.scale] = scale.astype(np.float32)
    matrices = {_weight_name(layer) for layer in linears.values()}
    for name, value in state.items():
        if name.startswith("encoder.") and name not in matrices:  # biases and layer norms
            arrays[GRAPH_PREFIX + name] = np.ascontiguousarray(value, dtype=np.float32)
    return arrays


def describe(settings: FinetuneSettings, tuned: TunedWeights) -> dict[str, Any]:
    """What an artifact's metadata records about the fine-tuning."""
    return {
        **settings.as_dict(),
        "frozen": ["embeddings"],
        "weights_sha256": tuned.sha256,
        "weights_bytes": tuned.nbytes,
        "torch": metadata.version("torch"),
        "transformers": metadata.version("transformers"),
    }
