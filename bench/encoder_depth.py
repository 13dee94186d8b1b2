"""What a deeper encoder of MiniLM's width would cost to serve: 6 layers against 12.

The stronger small encoders (bge-small, e5-small-v2, gte-small) have all-MiniLM-L6-v2's width
(384, 12 heads, 1,536 in the feed-forward) and twice its depth. None ships on PyPI, so their
speed is estimated from two randomly initialised BERTs of that shape, exported and quantized
the same way; only the ratio of their times means anything. Needs `.[finetune]`:

    python bench/encoder_depth.py [--tokens 20] [--repeats 300]

Prints the median milliseconds a sentence for each depth (one thread, one sentence per call,
rounds alternating so drift hits both) and the ratio of 12 to 6 layers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import BertConfig, BertModel


class _LastHidden(torch.nn.Module):
    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids).last_hidden_state


def int8_session(layers: int, workdir: Path) -> ort.InferenceSession:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=layers,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    model = _LastHidden(BertModel(config).eval())
    fp32, int8 = workdir / f"bert{layers}.onnx", workdir / f"bert{layers}.int8.onnx"
    torch.onnx.export(
        model,
        (torch.ones(1, 8, dtype=torch.long),),
        str(fp32),
        input_names=["input_ids"],
        dynamic_axes={"input_ids": {1: "tokens"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])


def ms_per_sentence(session: ort.InferenceSession, ids: np.ndarray, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        session.run(None, {"input_ids": ids})
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=20, help="tokens a sentence")
    parser.add_argument("--repeats", type=int, default=300, help="calls a round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(1000, 20000, (1, args.tokens), dtype=np.int64)
    with tempfile.TemporaryDirectory() as workdir:
        sessions = {layers: int8_session(layers, Path(workdir)) for layers in (6, 12)}
    times: dict[int, list[float]] = {6: [], 12: []}
    for session in sessions.values():  # warm-up
        ms_per_sentence(session, ids, 50)
    for _ in range(args.rounds):
        for layers, session in sessions.items():
            times[layers].append(ms_per_sentence(session, ids, args.repeats))
    medians = {layers: statistics.median(runs) for layers, runs in times.items()}
    for layers, runs in times.items():
        print(
            f"{layers:>2} layers: {medians[layers]:.2f} ms a sentence (rounds: "
            + ", ".join(f"{run:.2f}" for run in runs)
            + ")"
        )
    print(f"12 / 6 layers: {medians[12] / medians[6]:.2f}")


if __name__ == "__main__":
    main()
