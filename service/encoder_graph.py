"""Rewrite the shipped ONNX sentence encoder for fast single-sentence inference on CPU.

The file (all-MiniLM-L6-v2 as exported by PyTorch, int8 weights) runs about 280 small operators
per sentence, and for a 20-token sentence most of the time goes to the operators, not the
arithmetic. Each rewrite below computes the same function with fewer operators:

- `x @ (float(W_int8) * scale)` → `DynamicQuantizeMatMul(x, W_int8, scale, bias)`: the shipped
  int8 weights, unchanged, in integer arithmetic, with the bias `Add` that followed folded in;
- each layer's attention (about 25 reshapes, transposes, masks and NaN guards around two
  MatMuls and a softmax) → one `MultiHeadAttention`;
- `x * 0.5 * (1 + erf(x / √2))` → one `Gelu`.

The attention rewrite drops the attention mask: it is exact only for unpadded input, which is
how `service.encoder` runs every sentence (one per call). Anything that does not match a pattern
is left as it is; the rewritten graph is checked against the original in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MICROSOFT = "com.microsoft"  # onnxruntime's contrib operators


def rewrite_for_cpu(path: Path, weights: Mapping[str, np.ndarray[Any, Any]] | None = None) -> bytes:
    """The ONNX model at `path`, rewritten (see the module docstring), serialized.

    `weights` replace initializers of the same name, dtype and shape first: a fine-tuned
    encoder's weights (training/finetune.py) run in the shipped graph.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    if weights:
        replace_initializers(model.graph, weights)
    graph = _Graph(model.graph)
    rewritten = graph.int8_matmuls() + graph.gelus() + graph.attentions()
    if not rewritten:
        return path.read_bytes()
    graph.commit()
    model.opset_import.append(helper.make_opsetid(MICROSOFT, 1))
    return bytes(model.SerializeToString())


@dataclass(frozen=True)
class QuantizedLinear:
    """The initializers of one `x @ (float(weights) * scale) + bias` in the shipped graph.

    `weights` are int8, (inputs, outputs); `scale` is float, one per output column; `bias` is
    "" when no bias Add follows.
    """

    weights: str
    scale: str
    bias: str


def quantized_linears(graph: Any) -> dict[str, QuantizedLinear]:
    """Every int8 linear layer of an ONNX graph with a bias, keyed by the bias's name.

    The shipped graph keeps PyTorch's names for biases ("inner.encoder.layer.0.output.dense.bias")
    but not for the int8 weights ("val_118_q"); the bias is how a layer is found by name.
    """
    whole = _Graph(graph)
    found = (whole.quantized_linear(node) for node in whole.nodes if node.op_type == "MatMul")
    return {layer.bias: layer for layer, _ in filter(None, found) if layer.bias}


def replace_initializers(graph: Any, weights: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Put `weights` in place of the graph's initializers of the same names.

    Raises ValueError when a name is not an initializer, or its dtype or shape differ: weights
    fine-tuned from another encoder must not run silently in this one.
    """
    from onnx import numpy_helper

    position = {tensor.name: index for index, tensor in enumerate(graph.initializer)}
    for name, array in weights.items():
        if name not in position:
            raise ValueError(f"the encoder graph has no initializer {name!r}")
        current = graph.initializer[position[name]]
        expected = numpy_helper.to_array(current)
        if array.dtype != expected.dtype or array.shape != expected.shape:
            raise ValueError(
                f"initializer {name!r} is {expected.dtype} {list(expected.shape)} in the graph, "
                f"got {array.dtype} {list(array.shape)}"
            )
        graph.initializer[position[name]].CopyFrom(numpy_helper.from_array(array, name))


class _Graph:
    """An ONNX graph being rewritten: nodes are replaced in place, dead ones dropped at the end."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.nodes: list[Any] = list(graph.node)
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.scalars = {
            name: float(numpy_helper.to_array(tensor).reshape(-1)[0])
            for name, tensor in self.initializers.items()
            if int(np.prod(tensor.dims)) == 1
        }
        self.added: list[Any] = []
        self._index()

    def _index(self) -> None:
        self.producer = {output: node for node in self.nodes for output in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def _only_consumer(self, name: str, op_type: str) -> Any | None:
        consumers = self.consumers.get(name, [])
        if len(consumers) == 1 and consumers[0].op_type == op_type:
            return consumers[0]
        return None

    def _replace(self, old: Any, new: Any) -> None:
        self.nodes[self.nodes.index(old)] = new
        self._index()

    def _constant(self, name: str) -> float | None:
        return self.scalars.get(name)

    def quantized_linear(self, matmul: Any) -> tuple[QuantizedLinear, Any | None] | None:
        """For a MatMul by dequantized int8 weights, `x @ (float(weights) * scale)`: its
        initializers, and the bias Add that follows it (None when there is none). None for any
        other MatMul."""
        from onnx import TensorProto

        scaled = self.producer.get(matmul.input[1])
        if scaled is None or scaled.op_type != "Mul":
            return None
        cast = self.producer.get(scaled.input[0])
        if cast is None or cast.op_type != "Cast":
            return None
        weights = self.initializers.get(cast.input[0])
        scale = self.initializers.get(scaled.input[1])
        if weights is None or scale is None or weights.data_type != TensorProto.INT8:
            return None
        bias_add = self._only_consumer(matmul.output[0], "Add")
        bias = None
        if bias_add is not None and len(weights.dims) == 2:
            bias = self.initializers.get(_other(bias_add.input, matmul.output[0]))
        if bias is None or list(bias.dims) != [weights.dims[1]]:
            bias, bias_add = None, None
        return QuantizedLinear(weights.name, scale.name, bias.name if bias else ""), bias_add

    def int8_matmuls(self) -> int:
        """MatMul by dequantized int8 weights (and a following bias Add) → DynamicQuantizeMatMul."""
        from onnx import helper, numpy_helper

        count = 0
        for node in [node for node in self.nodes if node.op_type == "MatMul"]:
            found = self.quantized_linear(node)
            if found is None:
                continue
            layer, bias_add = found
            weights = self.initializers[layer.weights]
            column_scale = numpy_helper.to_array(self.initializers[layer.scale])
            column_scale = column_scale.astype(np.float32).reshape(-1)
            if len(weights.dims) != 2 or column_scale.size != weights.dims[1]:
                continue
            self._add_initializer(column_scale, f"{layer.scale}.column")
            inputs = [node.input[0], layer.weights, f"{layer.scale}.column"]
            outputs = list(node.output)
            if bias_add is not None:
                inputs += ["", layer.bias]  # no zero point: the weights are symmetric
                outputs = list(bias_add.output)
                self.nodes.remove(bias_add)
            fused = helper.make_node(
                "DynamicQuantizeMatMul", inputs, outputs, name=f"{node.name}.int8", domain=MICROSOFT
            )
            self._replace(node, fused)
            count += 1
        return count

    def gelus(self) -> int:
        """x * 0.5 * (1 + erf(x / √2)) → Gelu(x)."""
        from onnx import helper

        count = 0
        for erf in [node for node in self.nodes if node.op_type == "Erf"]:
            chain = self._chain(erf, ("Add", "Mul", "Mul"))
            divide = self.producer.get(erf.input[0])
            if chain is None or divide is None or divide.op_type != "Div":
                continue
            plus_one, half, times_x = chain
            x = divide.input[0]
            root_two = self._constant(divide.input[1])
            one = self._constant(_other(plus_one.input, erf.output[0]))
            one_half = self._constant(_other(half.input, plus_one.output[0]))
            if (
                _other(times_x.input, half.output[0]) != x
                or root_two is None
                or not math.isclose(root_two, math.sqrt(2), rel_tol=1e-6)
                or (one, one_half) != (1.0, 0.5)
            ):
                continue
            gelu = helper.make_node(
                "Gelu", [x], list(times_x.output), name=f"{erf.name}.gelu", domain=MICROSOFT
            )
            for node in (divide, erf, plus_one, half):
                self.nodes.remove(node)
            self._replace(times_x, gelu)
            count += 1
        return count

    def _chain(self, start: Any, op_types: tuple[str, ...]) -> list[Any] | None:
        """The nodes that follow `start` one after another, each the only consumer of the last."""
        chain, node = [], start
        for op_type in op_types:
            node = self._only_consumer(node.output[0], op_type)
            if node is None:
                return None
            chain.append(node)
        return chain

    def attentions(self) -> int:
        """softmax(q kᵀ · scale + mask) v, with its reshapes → MultiHeadAttention(q, k, v)."""
        from onnx import helper

        count = 0
        for softmax in [node for node in self.nodes if node.op_type == "Softmax"]:
            scores = self.producer.get(softmax.input[0])
            if scores is not None and scores.op_type == "Add":  # the attention mask
                scores = next(
                    (
                        self.producer[name]
                        for name in scores.input
                        if name in self.producer and self.producer[name].op_type == "MatMul"
                    ),
                    None,
                )
            if scores is None or scores.op_type != "MatMul":
                continue
            attend = self._after_guards(softmax.output[0])
            if attend is None:
                continue
            chain = self._chain(attend, ("Transpose", "Reshape"))  # heads back into one row
            query, query_scale = self._projection(scores.input[0])
            key, key_scale = self._projection(scores.input[1])
            value, value_scale = self._projection(attend.input[1])
            if chain is None or query is None or key is None or value is None or value_scale != 1:
                continue
            merged = chain[-1]
            scale = query_scale * key_scale
            hidden = self._width(query)
            head_size = round(1 / scale**2) if scale > 0 else 0
            if not hidden or not head_size or hidden % head_size:
                continue
            attention = helper.make_node(
                "MultiHeadAttention",
                [query, key, value],
                list(merged.output),
                name=f"{softmax.name}.attention",
                domain=MICROSOFT,
                num_heads=hidden // head_size,
                scale=scale,
            )
            self._replace(merged, attention)
            count += 1
        return count

    def _after_guards(self, probabilities: str) -> Any | None:
        """The MatMul that applies attention probabilities, past any NaN guard (IsNaN, Where)."""
        for consumer in self.consumers.get(probabilities, []):
            if consumer.op_type == "MatMul" and consumer.input[0] == probabilities:
                return consumer
            if consumer.op_type == "Where" and consumer.input[2] == probabilities:
                return self._after_guards(consumer.output[0])
        return None

    def _projection(self, name: str) -> tuple[str | None, float]:
        """Walk back from an attention operand through reshapes, transposes and constant scaling
        to the projection (a DynamicQuantizeMatMul) that made it; also return the scaling."""
        scale = 1.0
        for _ in range(16):
            node = self.producer.get(name)
            if node is None:
                return None, scale
            if node.op_type == "DynamicQuantizeMatMul":
                return name, scale
            if node.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze"):
                name = node.input[0]
            elif node.op_type in ("Mul", "Div") and len(node.input) == 2:
                data, constant = node.input[0], self._constant(node.input[1])
                if constant is None and node.op_type == "Mul":
                    data, constant = node.input[1], self._constant(node.input[0])
                if not constant:
                    return None, scale
                scale *= constant if node.op_type == "Mul" else 1 / constant
                name = data
            else:
                return None, scale
        return None, scale

    def _width(self, projected: str) -> int:
        node = self.producer[projected]
        weights = self.initializers.get(node.input[1])
        return int(weights.dims[1]) if weights is not None and len(weights.dims) == 2 else 0

    def _add_initializer(self, array: np.ndarray[Any, Any], name: str) -> None:
        from onnx import numpy_helper

        self.added.append(numpy_helper.from_array(array, name))

    def commit(self) -> None:
        """Write the nodes back, without the ones nothing needs any more, nor their constants."""
        needed = {output.name for output in self.graph.output}
        live: list[Any] = []
        for node in reversed(self.nodes):
            if any(output in needed for output in node.output):
                live.append(node)
                needed.update(name for name in node.input if name)
        del self.graph.node[:]
        self.graph.node.extend(reversed(live))
        self.graph.initializer.extend(self.added)
        kept = [tensor for tensor in self.graph.initializer if tensor.name in needed]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)


def _other(pair: Iterable[str], name: str) -> str:
    """The input of a two-input node that is not `name`."""
    others = [item for item in pair if item != name]
    return others[0] if len(others) == 1 else ""
