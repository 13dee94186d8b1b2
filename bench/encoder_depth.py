"""What a deeper encoder of MiniLM's width would cost to serve: 6 layers against 12.

The stronger small encoders (bge-small, e5-small-v2, gte-small) have all-MiniLM-L6-v2's width
(384, 12 heads, 1,536 in the feed-forward) and twice its depth. None ships on PyPI, so their
speed is estimated from the shipped encoder as PyTorch loads it for fine-tuning
(training/finetune.py) and a randomly initialised copy of its configuration with twice the
layers, both exported and quantized the same way; only the ratio of their times means anything.
Needs `.[finetune]`:

    python bench/encoder_depth.py [--tokens 20] [--repeats 300]

Prints the median milliseconds a sentence for each depth (one thread, one sentence per call,
rounds alternating so drift hits both) and the ratio of 12 to 6 layers.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from training.finetune import shipped_encoder, torch_modules


def int8_session(bert: Any, workdir: Path) -> ort.InferenceSession:
    """`bert` exported to ONNX, its MatMuls quantized to int8, on one onnxruntime thread."""
    torch, _, _ = torch_modules()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any) -> Any:
            return self.bert(input_ids=input_ids).last_hidden_state

    layers = bert.config.num_hidden_layers
    fp32, int8 = workdir / f"bert{layers}.onnx", workdir / f"bert{layers}.int8.onnx"
    torch.onnx.export(
        LastHidden().eval(),
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

    torch, bert_model, _ = torch_modules()
    torch.manual_seed(0)
    shipped, _, _ = shipped_encoder()
    deeper_config = copy.deepcopy(shipped.config)
    deeper_config.num_hidden_layers *= 2
    deeper = bert_model(deeper_config, add_pooling_layer=False)
    ids = np.random.default_rng(0).integers(1000, 20000, (1, args.tokens), dtype=np.int64)
    with tempfile.TemporaryDirectory() as workdir:
        sessions = {
            bert.config.num_hidden_layers: int8_session(bert.eval(), Path(workdir))
            for bert in (shipped, deeper)
        }
    times: dict[int, list[float]] = {layers: [] for layers in sessions}
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
    shallow, deep = sorted(medians)
    print(f"{deep} / {shallow} layers: {medians[deep] / medians[shallow]:.2f}")


if __name__ == "__main__":
    main()
