#!/usr/bin/env python3
"""Builds the small ONNX models the importer tests run, with inputs and onnxruntime's outputs.

Usage: onnx_models.py OUTPUT_DIR [SEED]
       onnx_models.py --run MODEL.onnx OUTPUT_PREFIX INPUT.npy...


For every model NAME it writes NAME.onnx, its inputs NAME.in0.npy, NAME.in1.npy, ... (float32, in
the order of manifest.json's "inputs") and onnxruntime's outputs NAME.out0.npy, ... (float32; an
int64 MaxPool Indices output is written as float32, exact below 2^24, with kind "indices").
Models the importer must refuse carry "refuse": the strings its error must contain (node name
and op type, or the opset), and no outputs. manifest.json lists everything.

With --run it runs MODEL.onnx in onnxruntime on the given inputs (in graph-input order) and writes
OUTPUT_PREFIX.out0.npy, ... (the check that onnxruntime reproduces a model Loupe exported).

The Swift tests run this into a temporary directory at test time; nothing it writes is committed.
Weights are random float32 initializers (one model takes them as graph inputs instead); inputs
are fresh random values unless SEED is given (the seed used is recorded in the manifest).
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


class Models:
    def __init__(self, out_dir, seed):
        self.out_dir = out_dir
        self.rng = np.random.default_rng(seed)
        self.manifest = {"seed": seed, "models": []}

    # -- building blocks -------------------------------------------------------------------
    def rand(self, *shape, scale=1.0):
        return (self.rng.uniform(-1, 1, size=shape) * scale).astype(np.float32)

    def init(self, name, array):
        return numpy_helper.from_array(np.asarray(array), name=name)

    def ints(self, name, values):
        return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name=name)

    def floats(self, name, values):
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name=name)

    @staticmethod
    def vi(name, shape, elem=FLOAT):
        return helper.make_tensor_value_info(name, elem, shape)

    def model(self, nodes, inputs, outputs, initializers, opset, name):
        opsets = [helper.make_opsetid("", opset)]
        ir_version = helper.find_min_ir_version_for(opsets)
        graph_inputs = list(inputs)
        if ir_version < 4:
            # Before IR 4 every initializer is also a graph input (with the initializer as its default).
            graph_inputs += [self.vi(t.name, list(t.dims), t.data_type) for t in initializers]
        graph = helper.make_graph(nodes, name, graph_inputs, outputs, initializer=initializers)
        return helper.make_model(graph, opset_imports=opsets, producer_name="loupe-tests", ir_version=ir_version)

    # -- writing ---------------------------------------------------------------------------
    @staticmethod
    def session(path):
        options = ort.SessionOptions()
        # The operator as specified, not a fused or approximated rewrite of it.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def emit(self, name, nodes, inputs, outputs, initializers=(), opset=13, feeds=None, check=True):
        """A model that must import and reproduce onnxruntime's outputs."""
        m = self.model(nodes, inputs, outputs, list(initializers), opset, name)
        if check:
            onnx.checker.check_model(m, full_check=True)
        path = os.path.join(self.out_dir, name + ".onnx")
        onnx.save(m, path)
        feeds = feeds or {}
        arrays = []
        for vi in inputs:
            if vi.name not in feeds:
                dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
                feeds[vi.name] = self.rand(*dims)
            arrays.append(feeds[vi.name])
        session = self.session(path)
        results = session.run([o.name for o in outputs], {vi.name: a for vi, a in zip(inputs, arrays)})
        entry = {"name": name, "opset": opset, "inputs": [], "outputs": []}
        for i, (vi, a) in enumerate(zip(inputs, arrays)):
            f = f"{name}.in{i}.npy"
            np.save(os.path.join(self.out_dir, f), np.ascontiguousarray(a, dtype=np.float32))
            entry["inputs"].append({"name": vi.name, "file": f})
        for i, (o, r) in enumerate(zip(outputs, results)):
            f = f"{name}.out{i}.npy"
            kind = "indices" if r.dtype == np.int64 else "float"
            np.save(os.path.join(self.out_dir, f), np.ascontiguousarray(r, dtype=np.float32))
            entry["outputs"].append({"name": o.name, "file": f, "kind": kind})
        self.manifest["models"].append(entry)

    def refuse(self, name, nodes, inputs, outputs, initializers=(), opset=13, expect=()):
        """A valid model the importer must refuse with an error containing every string in `expect`."""
        m = self.model(nodes, inputs, outputs, list(initializers), opset, name)
        onnx.save(m, os.path.join(self.out_dir, name + ".onnx"))
        self.manifest["models"].append({"name": name, "opset": opset, "refuse": list(expect)})

    def finish(self):
        with open(os.path.join(self.out_dir, "manifest.json"), "w") as f:
            json.dump(self.manifest, f, indent=1)


def build(ms):
    vi, rand, init, ints, floats = ms.vi, ms.rand, ms.init, ms.ints, ms.floats
    node = helper.make_node

    # -- Conv (signature changes at 1 and 11) ----------------------------------------------
    ms.emit("conv_basic_o7", [node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
            [vi("x", [2, 3, 7, 7])], [vi("y", [2, 4, 7, 7])],
            [init("w", rand(4, 3, 3, 3)), init("b", rand(4))], opset=7)
    ms.emit("conv_strided_dilated_asym_o11",
            [node("Conv", ["x", "w"], ["y"], name="conv", strides=[2, 1], dilations=[2, 1], pads=[1, 0, 2, 1])],
            [vi("x", [1, 3, 9, 8])], [vi("y", [1, 5, 4, 8])], [init("w", rand(5, 3, 3, 2))], opset=11)
    ms.emit("conv_group_o11", [node("Conv", ["x", "w", "b"], ["y"], name="grouped", group=2, pads=[1, 1, 1, 1])],
            [vi("x", [1, 4, 6, 6])], [vi("y", [1, 6, 6, 6])], [init("w", rand(6, 2, 3, 3)), init("b", rand(6))], opset=11)
    ms.emit("conv_depthwise_o13", [node("Conv", ["x", "w", "b"], ["y"], name="depthwise", group=3, strides=[2, 2], pads=[1, 1, 1, 1])],
            [vi("x", [2, 3, 8, 8])], [vi("y", [2, 6, 4, 4])], [init("w", rand(6, 1, 3, 3)), init("b", rand(6))], opset=13)
    ms.emit("conv_same_upper_o11", [node("Conv", ["x", "w"], ["y"], name="same_upper", auto_pad="SAME_UPPER", strides=[2, 2])],
            [vi("x", [1, 2, 7, 8])], [vi("y", [1, 3, 4, 4])], [init("w", rand(3, 2, 4, 3))], opset=11)
    ms.emit("conv_same_lower_o11", [node("Conv", ["x", "w", "b"], ["y"], name="same_lower", auto_pad="SAME_LOWER", strides=[2, 1])],
            [vi("x", [1, 2, 7, 8])], [vi("y", [1, 3, 4, 8])], [init("w", rand(3, 2, 4, 3)), init("b", rand(3))], opset=11)
    ms.emit("conv_valid_o21", [node("Conv", ["x", "w"], ["y"], name="valid", auto_pad="VALID", strides=[2, 2], kernel_shape=[3, 3])],
            [vi("x", [2, 3, 8, 9])], [vi("y", [2, 2, 3, 4])], [init("w", rand(2, 3, 3, 3))], opset=21)

    # -- ConvTranspose (1, 11) -------------------------------------------------------------
    ms.emit("convt_basic_o7", [node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])],
            [vi("x", [2, 3, 4, 4])], [vi("y", [2, 2, 8, 8])], [init("w", rand(3, 2, 3, 3)), init("b", rand(2))], opset=7)
    ms.emit("convt_dilated_group_o11", [node("ConvTranspose", ["x", "w"], ["y"], name="up_grouped", group=2, dilations=[2, 2], pads=[1, 0, 0, 1])],
            [vi("x", [1, 4, 5, 5])], [vi("y", [1, 6, 8, 8])], [init("w", rand(4, 3, 3, 3))], opset=11)
    ms.emit("convt_asym_pads_o13", [node("ConvTranspose", ["x", "w", "b"], ["y"], name="up_asym", strides=[2, 3], pads=[0, 1, 2, 0])],
            [vi("x", [1, 2, 4, 3])], [vi("y", [1, 3, 7, 8])], [init("w", rand(2, 3, 3, 3)), init("b", rand(3))], opset=13)
    ms.emit("convt_output_shape_o11", [node("ConvTranspose", ["x", "w"], ["y"], name="up_shaped", strides=[2, 2], output_shape=[9, 10])],
            [vi("x", [1, 2, 4, 5])], [vi("y", [1, 2, 9, 10])], [init("w", rand(2, 2, 3, 3))], opset=11)
    ms.emit("convt_output_shape_odd_o13", [node("ConvTranspose", ["x", "w"], ["y"], name="up_odd", strides=[2, 2], output_shape=[8, 8])],
            [vi("x", [1, 2, 4, 4])], [vi("y", [1, 2, 8, 8])], [init("w", rand(2, 2, 3, 3))], opset=13)
    ms.emit("convt_same_upper_o21", [node("ConvTranspose", ["x", "w"], ["y"], name="up_same", strides=[2, 2], auto_pad="SAME_UPPER")],
            [vi("x", [1, 2, 4, 4])], [vi("y", [1, 3, 8, 8])], [init("w", rand(2, 3, 3, 3))], opset=21)

    # -- MaxPool (1, 8, 10, 11, 12) --------------------------------------------------------
    ms.emit("maxpool_o7", [node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            [vi("x", [2, 3, 7, 7])], [vi("y", [2, 3, 4, 4])], opset=7)
    ms.emit("maxpool_indices_o8", [node("MaxPool", ["x"], ["y", "i"], name="pool_i", kernel_shape=[2, 2], strides=[2, 2], storage_order=0)],
            [vi("x", [2, 3, 6, 7])], [vi("y", [2, 3, 3, 3]), vi("i", [2, 3, 3, 3], TensorProto.INT64)], opset=8)
    ms.emit("maxpool_ceil_o10", [node("MaxPool", ["x"], ["y"], name="pool_ceil", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
            [vi("x", [1, 2, 8, 8])], [vi("y", [1, 2, 4, 4])], opset=10)
    ms.emit("maxpool_dilated_o12", [node("MaxPool", ["x"], ["y", "i"], name="pool_dil", kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 0, 1])],
            [vi("x", [1, 2, 7, 7])], [vi("y", [1, 2, 6, 7]), vi("i", [1, 2, 6, 7], TensorProto.INT64)], opset=12)
    ms.emit("maxpool_same_upper_o11", [node("MaxPool", ["x"], ["y"], name="pool_same", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
            [vi("x", [1, 2, 8, 7])], [vi("y", [1, 2, 4, 4])], opset=11)

    # -- AveragePool (1, 7, 10, 11, 19) ----------------------------------------------------
    ms.emit("avgpool_include_pad_o7", [node("AveragePool", ["x"], ["y"], name="avg", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
            [vi("x", [2, 3, 7, 7])], [vi("y", [2, 3, 4, 4])], opset=7)
    ms.emit("avgpool_exclude_pad_ceil_o10", [node("AveragePool", ["x"], ["y"], name="avg_ceil", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
            [vi("x", [1, 2, 8, 8])], [vi("y", [1, 2, 5, 5])], opset=10)
    ms.emit("avgpool_include_pad_ceil_o11", [node("AveragePool", ["x"], ["y"], name="avg_ceil_incl", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1, count_include_pad=1)],
            [vi("x", [1, 2, 8, 9])], [vi("y", [1, 2, 5, 4])], opset=11)
    ms.emit("avgpool_o19", [node("AveragePool", ["x"], ["y"], name="avg19", kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 1])],
            [vi("x", [1, 3, 5, 6])], [vi("y", [1, 3, 5, 3])], opset=19)

    # -- Global pools, activations ---------------------------------------------------------
    ms.emit("global_pools_o7", [node("GlobalAveragePool", ["x"], ["a"], name="gap"), node("GlobalMaxPool", ["x"], ["m"], name="gmp")],
            [vi("x", [2, 3, 5, 4])], [vi("a", [2, 3, 1, 1]), vi("m", [2, 3, 1, 1])], opset=7)
    ms.emit("global_pools_o21", [node("GlobalAveragePool", ["x"], ["a"], name="gap"), node("GlobalMaxPool", ["x"], ["m"], name="gmp")],
            [vi("x", [1, 4, 3, 6])], [vi("a", [1, 4, 1, 1]), vi("m", [1, 4, 1, 1])], opset=21)
    ms.emit("relu_leaky_o7", [node("Relu", ["x"], ["r"], name="relu"), node("LeakyRelu", ["x"], ["l"], name="leaky_default")],
            [vi("x", [2, 3, 4, 4])], [vi("r", [2, 3, 4, 4]), vi("l", [2, 3, 4, 4])], opset=7)
    ms.emit("relu_leaky_o16", [node("Relu", ["x"], ["r"], name="relu"), node("LeakyRelu", ["x"], ["l"], name="leaky", alpha=0.2)],
            [vi("x", [2, 5])], [vi("r", [2, 5]), vi("l", [2, 5])], opset=16)

    # -- Gemm (7, 9, 11, 13), MatMul -------------------------------------------------------
    ms.emit("gemm_transB_alpha_beta_o7", [node("Gemm", ["x", "w", "c"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0)],
            [vi("x", [3, 6])], [vi("y", [3, 4])], [init("w", rand(4, 6)), init("c", rand(4))], opset=7)
    ms.emit("gemm_transA_B_input_o9", [node("Gemm", ["a", "b", "c"], ["y"], name="fc_ta", transA=1, transB=1, alpha=1.5, beta=0.25)],
            [vi("b", [4, 6])], [vi("y", [3, 4])], [init("a", rand(6, 3)), init("c", rand(1, 4))], opset=9)
    ms.emit("gemm_no_c_o11", [node("Gemm", ["x", "w"], ["y"], name="fc_noc", alpha=2.0)],
            [vi("x", [2, 5])], [vi("y", [2, 3])], [init("w", rand(5, 3))], opset=11)
    ms.emit("gemm_full_c_o13", [node("Gemm", ["x", "w", "c"], ["y"], name="fc_fullc", beta=0.5)],
            [vi("x", [3, 5])], [vi("y", [3, 2])], [init("w", rand(5, 2)), init("c", rand(3, 2))], opset=13)
    ms.emit("gemm_scalar_c_o13", [node("Gemm", ["x", "w", "c"], ["y"], name="fc_scalarc", transB=1)],
            [vi("x", [2, 5])], [vi("y", [2, 3])], [init("w", rand(3, 5)), init("c", rand(1))], opset=13)
    ms.emit("gemm_c_input_o13", [node("Gemm", ["x", "w", "c"], ["y"], name="fc_cin", transB=1, alpha=0.75, beta=1.5)],
            [vi("x", [2, 5]), vi("c", [2, 3])], [vi("y", [2, 3])], [init("w", rand(3, 5))], opset=13)
    ms.emit("matmul_add_o9", [node("MatMul", ["x", "w"], ["m"], name="mm"), node("Add", ["m", "b"], ["y"], name="bias")],
            [vi("x", [3, 5])], [vi("y", [3, 4])], [init("w", rand(5, 4)), init("b", rand(4))], opset=9)
    ms.emit("matmul_o13", [node("MatMul", ["x", "w"], ["y"], name="mm")],
            [vi("x", [2, 7])], [vi("y", [2, 3])], [init("w", rand(7, 3))], opset=13)

    # -- Add, Sum, Concat, Flatten, Reshape ------------------------------------------------
    ms.emit("add_sum_o7", [node("Add", ["a", "b"], ["s"], name="add"), node("Sum", ["a", "b", "s"], ["t"], name="sum3")],
            [vi("a", [2, 3, 4, 4]), vi("b", [2, 3, 4, 4])], [vi("s", [2, 3, 4, 4]), vi("t", [2, 3, 4, 4])], opset=7)
    ms.emit("add_broadcast_o14", [node("Add", ["x", "c"], ["y"], name="add_bcast"), node("Add", ["k", "y"], ["z"], name="add_scalar")],
            [vi("x", [2, 3, 4, 5])], [vi("z", [2, 3, 4, 5])], [init("c", rand(1, 3, 1, 1)), init("k", rand(1))], opset=14)
    ms.emit("sum_o8", [node("Sum", ["a", "b", "c"], ["y"], name="sum"), node("Sum", ["a"], ["z"], name="sum1")],
            [vi("a", [2, 6]), vi("b", [2, 6])], [vi("y", [2, 6]), vi("z", [2, 6])], [init("c", rand(6))], opset=8)
    ms.emit("sum_o13", [node("Sum", ["a", "b"], ["y"], name="sum")],
            [vi("a", [1, 2, 3, 3]), vi("b", [1, 2, 3, 3])], [vi("y", [1, 2, 3, 3])], opset=13)
    ms.emit("concat_o7", [node("Concat", ["a", "b"], ["y"], name="cat", axis=1)],
            [vi("a", [2, 5]), vi("b", [2, 3])], [vi("y", [2, 8])], opset=7)
    ms.emit("concat_o11", [node("Concat", ["a", "b", "c"], ["y"], name="cat", axis=1)],
            [vi("a", [2, 1, 3, 3]), vi("b", [2, 4, 3, 3])], [vi("y", [2, 7, 3, 3])], [init("c", rand(2, 2, 3, 3))], opset=11)
    ms.emit("concat_negative_axis_o13", [node("Concat", ["a", "b"], ["y"], name="cat_neg", axis=-3)],
            [vi("a", [1, 2, 3, 4]), vi("b", [1, 3, 3, 4])], [vi("y", [1, 5, 3, 4])], opset=13)
    ms.emit("flatten_o9", [node("Flatten", ["x"], ["f1"], name="flat1"), node("Flatten", ["x"], ["f0"], name="flat0", axis=0)],
            [vi("x", [2, 3, 2, 2])], [vi("f1", [2, 12]), vi("f0", [1, 24])], opset=9)
    ms.emit("flatten_o13", [node("Flatten", ["x"], ["f2"], name="flat2", axis=2), node("Flatten", ["x"], ["f4"], name="flat4", axis=-1)],
            [vi("x", [2, 3, 2, 5])], [vi("f2", [6, 10]), vi("f4", [12, 5])], opset=13)
    ms.emit("reshape_o7", [node("Reshape", ["x", "shape"], ["y"], name="reshape")],
            [vi("x", [2, 3, 4, 5])], [vi("y", [2, 60])], [ints("shape", [0, -1])], opset=7)
    ms.emit("reshape_constant_o14",
            [node("Constant", [], ["shape"], name="shape_const", value=helper.make_tensor("v", TensorProto.INT64, [4], [0, 2, -1, 3])),
             node("Reshape", ["x", "shape"], ["y"], name="reshape", allowzero=0)],
            [vi("x", [2, 4, 3, 3])], [vi("y", [2, 2, 6, 3])], opset=14)
    ms.emit("reshape_o21", [node("Reshape", ["x", "shape"], ["y"], name="reshape")],
            [vi("x", [2, 12])], [vi("y", [2, 3, 2, 2])], [ints("shape", [-1, 3, 2, 2])], opset=21)

    # -- Softmax / LogSoftmax (the axis meaning changes at 13) -----------------------------
    ms.emit("softmax_coerced_o7", [node("Softmax", ["x"], ["s"], name="softmax"), node("LogSoftmax", ["x"], ["l"], name="logsoftmax", axis=2)],
            [vi("x", [2, 3, 2, 2])], [vi("s", [2, 3, 2, 2]), vi("l", [2, 3, 2, 2])], opset=7)
    ms.emit("softmax_o11", [node("Softmax", ["x"], ["s"], name="softmax", axis=1), node("LogSoftmax", ["x"], ["l"], name="logsoftmax")],
            [vi("x", [3, 10])], [vi("s", [3, 10]), vi("l", [3, 10])], opset=11)
    ms.emit("softmax_o13", [node("Softmax", ["x"], ["s"], name="softmax"), node("LogSoftmax", ["x"], ["l"], name="logsoftmax", axis=3)],
            [vi("x", [2, 3, 2, 4])], [vi("s", [2, 3, 2, 4]), vi("l", [2, 3, 2, 4])], opset=13)
    ms.emit("softmax_trailing_ones_o13", [node("Softmax", ["x"], ["s"], name="softmax_c", axis=1)],
            [vi("x", [2, 5, 1, 1])], [vi("s", [2, 5, 1, 1])], opset=13)

    # -- BatchNormalization, LRN, Dropout --------------------------------------------------
    def bn_params(c, prefix):
        return [init(prefix + "s", rand(c)), init(prefix + "b", rand(c)), init(prefix + "m", rand(c)),
                init(prefix + "v", ms.rng.uniform(0.5, 1.5, size=c).astype(np.float32))]
    ms.emit("batchnorm_o7", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", epsilon=1e-3, spatial=1)],
            [vi("x", [2, 3, 4, 4])], [vi("y", [2, 3, 4, 4])], bn_params(3, ""), opset=7)
    ms.emit("batchnorm_2d_o9", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn1d", momentum=0.8)],
            [vi("x", [3, 4])], [vi("y", [3, 4])], bn_params(4, ""), opset=9)
    ms.emit("batchnorm_o15", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", epsilon=1e-4, training_mode=0)],
            [vi("x", [1, 5, 3, 3])], [vi("y", [1, 5, 3, 3])], bn_params(5, ""), opset=15)
    ms.emit("lrn_o7", [node("LRN", ["x"], ["y"], name="lrn", size=3, alpha=1e-2, beta=0.75, bias=2.0)],
            [vi("x", [2, 6, 3, 3])], [vi("y", [2, 6, 3, 3])], opset=7)
    ms.emit("lrn_defaults_o13", [node("LRN", ["x"], ["y"], name="lrn5", size=5)],
            [vi("x", [1, 7, 2, 3])], [vi("y", [1, 7, 2, 3])], opset=13)
    ms.emit("dropout_o7", [node("Dropout", ["x"], ["y"], name="drop", ratio=0.3)],
            [vi("x", [2, 5])], [vi("y", [2, 5])], opset=7)
    ms.emit("dropout_o13", [node("Dropout", ["x", "r"], ["y"], name="drop")],
            [vi("x", [2, 3, 2, 2])], [vi("y", [2, 3, 2, 2])], [floats("r", 0.4)], opset=13)

    # -- Pad (attribute before 11, inputs from 11; axes from 18) ---------------------------
    ms.emit("pad_attribute_o7", [node("Pad", ["x"], ["y"], name="pad", pads=[0, 0, 1, 2, 0, 0, 2, 1], value=0.5)],
            [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 6, 6])], opset=7)
    ms.emit("pad_inputs_o11", [node("Pad", ["x", "pads", "v"], ["y"], name="pad", mode="constant")],
            [vi("x", [2, 2, 3, 4])], [vi("y", [2, 2, 4, 7])], [ints("pads", [0, 0, 0, 1, 0, 0, 1, 2]), floats("v", -1.25)], opset=11)
    ms.emit("pad_zero_o13", [node("Pad", ["x", "pads"], ["y"], name="pad0")],
            [vi("x", [1, 3, 2, 2])], [vi("y", [1, 3, 4, 5])], [ints("pads", [0, 0, 1, 1, 0, 0, 1, 2])], opset=13)
    ms.emit("pad_axes_o18", [node("Pad", ["x", "pads", "v", "axes"], ["y"], name="pad_axes")],
            [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 5, 4])], [ints("pads", [2, 0, 0, 1]), floats("v", 3.0), ints("axes", [2, -1])], opset=18)
    ms.emit("pad_o21", [node("Pad", ["x", "pads"], ["y"], name="pad21")],
            [vi("x", [1, 1, 2, 3])], [vi("y", [1, 1, 3, 3])], [ints("pads", [0, 0, 1, 0, 0, 0, 0, 0])], opset=21)

    # -- Identity, Constant ----------------------------------------------------------------
    ms.emit("identity_constant_o9",
            [node("Constant", [], ["k"], name="k", value=numpy_helper.from_array(rand(2, 3), name="kv")),
             node("Identity", ["x"], ["i"], name="id"), node("Add", ["i", "k"], ["y"], name="add_k")],
            [vi("x", [2, 3])], [vi("y", [2, 3])], opset=9)
    ms.emit("constant_floats_o13",
            [node("Constant", [], ["k"], name="k", value_floats=[float(v) for v in rand(4)]),
             node("Constant", [], ["s"], name="s", value_float=0.5),
             node("Add", ["x", "k"], ["a"], name="add_k"), node("Add", ["a", "s"], ["y"], name="add_s"),
             node("Identity", ["k"], ["kid"], name="k_out")],
            [vi("x", [3, 4])], [vi("y", [3, 4]), vi("kid", [4])], opset=13)

    # -- Resize (10, 11, 13, 18, 19) and Upsample (7, 9) -----------------------------------
    empty = floats("roi", np.zeros(0, dtype=np.float32))
    ms.emit("upsample_o7", [node("Upsample", ["x"], ["y"], name="up", mode="nearest", scales=[1.0, 1.0, 2.0, 3.0])],
            [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 6, 9])], opset=7)
    ms.emit("upsample_o9", [node("Upsample", ["x", "scales"], ["y"], name="up")],
            [vi("x", [2, 1, 2, 3])], [vi("y", [2, 1, 6, 6])], [floats("scales", [1, 1, 3, 2])], opset=9)
    ms.emit("resize_nearest_o10", [node("Resize", ["x", "scales"], ["y"], name="resize", mode="nearest")],
            [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 9, 8])], [floats("scales", [1, 1, 3, 2])], opset=10)
    ms.emit("resize_nearest_o11", [node("Resize", ["x", "roi", "scales"], ["y"], name="resize", mode="nearest",
                                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
            [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 9, 6])], [empty, floats("scales", [1, 1, 3, 2])], opset=11)
    ms.emit("resize_nearest_sizes_o13", [node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", mode="nearest",
                                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
            [vi("x", [2, 2, 3, 2])], [vi("y", [2, 2, 6, 8])], [ints("sizes", [2, 2, 6, 8])], opset=13)
    ms.emit("resize_nearest_down_o19", [node("Resize", ["x", "", "scales"], ["y"], name="resize_down", mode="nearest",
                                             coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
            [vi("x", [1, 2, 8, 6])], [vi("y", [1, 2, 4, 3])], [floats("scales", [1, 1, 0.5, 0.5])], opset=19)
    ms.emit("resize_linear_half_pixel_o13", [node("Resize", ["x", "", "", "sizes"], ["y"], name="resize_lin", mode="linear")],
            [vi("x", [1, 3, 5, 5])], [vi("y", [1, 3, 8, 7])], [ints("sizes", [1, 3, 8, 7])], opset=13)
    ms.emit("resize_linear_scales_o11", [node("Resize", ["x", "roi", "scales"], ["y"], name="resize_lin", mode="linear",
                                              coordinate_transformation_mode="half_pixel")],
            [vi("x", [2, 2, 4, 4])], [vi("y", [2, 2, 8, 6])], [empty, floats("scales", [1, 1, 2, 1.5])], opset=11)
    ms.emit("resize_linear_align_corners_o11", [node("Resize", ["x", "roi", "scales", "sizes"], ["y"], name="resize_ac", mode="linear",
                                                     coordinate_transformation_mode="align_corners")],
            [vi("x", [1, 2, 4, 3])], [vi("y", [1, 2, 7, 9])], [empty, floats("scales", []), ints("sizes", [1, 2, 7, 9])], opset=11)
    ms.emit("resize_linear_axes_o18", [node("Resize", ["x", "", "scales"], ["y"], name="resize_axes", mode="linear", axes=[2, 3])],
            [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 6, 8])], [floats("scales", [2, 2])], opset=18)

    # -- MaxUnpool (9, 11) with MaxPool's indices ------------------------------------------
    ms.emit("maxunpool_o9", [node("MaxPool", ["x"], ["p", "i"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                             node("MaxUnpool", ["p", "i"], ["y"], name="unpool", kernel_shape=[2, 2], strides=[2, 2])],
            [vi("x", [2, 3, 4, 6])], [vi("y", [2, 3, 4, 6])], opset=9)
    ms.emit("maxunpool_output_shape_o11", [node("MaxPool", ["x"], ["p", "i"], name="pool", kernel_shape=[2, 3], strides=[2, 3], pads=[1, 0, 0, 1]),
                                           node("MaxUnpool", ["p", "i", "shape"], ["y"], name="unpool", kernel_shape=[2, 3], strides=[2, 3], pads=[1, 0, 0, 1])],
            [vi("x", [1, 2, 5, 7])], [vi("y", [1, 2, 5, 7])], [ints("shape", [1, 2, 5, 7])], opset=11)

    # -- Weights as graph inputs, and a small CNN ------------------------------------------
    ms.emit("weights_as_inputs_o13",
            [node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]), node("Relu", ["c"], ["r"], name="relu"),
             node("Flatten", ["r"], ["f"], name="flat"), node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
            [vi("x", [2, 2, 4, 4]), vi("w", [3, 2, 3, 3]), vi("b", [3]), vi("fw", [5, 48]), vi("fb", [5])], [vi("y", [2, 5])], opset=13)
    cnn = [node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
           node("BatchNormalization", ["c1", "s1", "sh1", "m1", "v1"], ["n1"], name="bn1"),
           node("Relu", ["n1"], ["r1"], name="relu1"),
           node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
           node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
           node("BatchNormalization", ["c2", "s2", "sh2", "m2", "v2"], ["n2"], name="bn2"),
           node("Relu", ["n2"], ["r2"], name="relu2"),
           node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
           node("Flatten", ["g"], ["f"], name="flat"),
           node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc", transB=1),
           node("Softmax", ["logits"], ["prob"], name="softmax", axis=1)]
    cnn_init = [init("w1", rand(4, 3, 3, 3)), init("b1", rand(4)),
                init("s1", rand(4)), init("sh1", rand(4)), init("m1", rand(4)), init("v1", ms.rng.uniform(0.5, 1.5, 4).astype(np.float32)),
                init("w2", rand(6, 4, 3, 3)),
                init("s2", rand(6)), init("sh2", rand(6)), init("m2", rand(6)), init("v2", ms.rng.uniform(0.5, 1.5, 6).astype(np.float32)),
                init("fw", rand(5, 6)), init("fb", rand(5))]
    ms.emit("small_cnn_o13", cnn, [vi("x", [2, 3, 8, 8])], [vi("prob", [2, 5]), vi("logits", [2, 5])], cnn_init, opset=13)

    # -- What the importer must refuse, naming the node and op (or the opset) --------------
    ms.refuse("refuse_unknown_op", [node("Relu", ["x"], ["r"], name="relu"), node("Einsum", ["r"], ["y"], name="mystery", equation="ij->ji")],
              [vi("x", [2, 3])], [vi("y", [3, 2])], opset=13, expect=["mystery", "Einsum"])
    ms.refuse("refuse_pad_reflect", [node("Pad", ["x", "pads"], ["y"], name="reflect_pad", mode="reflect")],
              [vi("x", [1, 1, 3, 3])], [vi("y", [1, 1, 5, 5])], [ints("pads", [0, 0, 1, 1, 0, 0, 1, 1])], opset=13,
              expect=["reflect_pad", "Pad", "reflect"])
    ms.refuse("refuse_resize_cubic", [node("Resize", ["x", "", "scales"], ["y"], name="cubic", mode="cubic")],
              [vi("x", [1, 1, 3, 3])], [vi("y", [1, 1, 6, 6])], [floats("scales", [1, 1, 2, 2])], opset=13,
              expect=["cubic", "Resize"])
    ms.refuse("refuse_softmax_inner_axis_o13", [node("Softmax", ["x"], ["y"], name="inner_softmax", axis=1)],
              [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])], opset=13, expect=["inner_softmax", "Softmax", "axis"])
    ms.refuse("refuse_conv1d", [node("Conv", ["x", "w"], ["y"], name="conv1d")],
              [vi("x", [1, 2, 5])], [vi("y", [1, 3, 3])], [init("w", rand(3, 2, 3))], opset=13, expect=["conv1d", "Conv"])
    ms.refuse("refuse_storage_order", [node("MaxPool", ["x"], ["y", "i"], name="colmajor", kernel_shape=[2, 2], storage_order=1)],
              [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 3, 3]), vi("i", [1, 1, 3, 3], TensorProto.INT64)], opset=11,
              expect=["colmajor", "MaxPool", "storage_order"])
    ms.refuse("refuse_unknown_attribute", [node("Relu", ["x"], ["y"], name="odd_relu", slope=2.0)],
              [vi("x", [1, 3])], [vi("y", [1, 3])], opset=13, expect=["odd_relu", "Relu", "slope"])
    ms.refuse("refuse_resize_inexact_scale", [node("Resize", ["x", "", "scales"], ["y"], name="third", mode="nearest",
                                                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
              [vi("x", [1, 1, 6, 6])], [vi("y", [1, 1, 2, 2])], [floats("scales", [1, 1, 1 / 3, 1 / 3])], opset=13,
              expect=["third", "Resize", "scale"])
    ms.refuse("refuse_unpool_overlapping", [node("MaxPool", ["x"], ["p", "i"], name="pool", kernel_shape=[3, 3], strides=[2, 2]),
                                            node("MaxUnpool", ["p", "i", "shape"], ["y"], name="overlap_unpool", kernel_shape=[3, 3], strides=[2, 2])],
              [vi("x", [1, 1, 7, 7])], [vi("y", [1, 1, 7, 7])], [ints("shape", [1, 1, 7, 7])], opset=11,
              expect=["overlap_unpool", "MaxUnpool", "overlapping"])
    ms.refuse("refuse_gemm_broadcast_computed_c", [node("Gemm", ["x", "w", "c"], ["y"], name="fc_bc", beta=0.5)],
              [vi("x", [2, 3]), vi("c", [1, 4])], [vi("y", [2, 4])], [init("w", rand(3, 4))], opset=13,
              expect=["fc_bc", "Gemm", "broadcast"])
    ms.refuse("refuse_opset6", [node("Relu", ["x"], ["y"], name="relu")],
              [vi("x", [1, 3])], [vi("y", [1, 3])], opset=6, expect=["opset 6"])
    ms.refuse("refuse_opset22", [node("Relu", ["x"], ["y"], name="relu")],
              [vi("x", [1, 3])], [vi("y", [1, 3])], opset=22, expect=["opset 22"])


def run(model, prefix, inputs):
    session = Models.session(model)
    feeds = {i.name: np.load(f) for i, f in zip(session.get_inputs(), inputs)}
    for k, r in enumerate(session.run(None, feeds)):
        np.save(f"{prefix}.out{k}.npy", np.ascontiguousarray(r, dtype=np.float32))


def main(argv):
    if len(argv) >= 3 and argv[0] == "--run":
        run(argv[1], argv[2], argv[3:])
        return
    if len(argv) not in (1, 2):
        sys.exit("usage: onnx_models.py OUTPUT_DIR [SEED] | --run MODEL.onnx OUTPUT_PREFIX INPUT.npy...")
    out_dir = argv[0]
    os.makedirs(out_dir, exist_ok=True)
    seed = int(argv[1]) if len(argv) == 2 else int(np.random.SeedSequence().entropy % (1 << 32))
    ms = Models(out_dir, seed)
    build(ms)
    ms.finish()
    print(f"{len(ms.manifest['models'])} models in {out_dir} (seed {seed})")


if __name__ == "__main__":
    main(sys.argv[1:])
