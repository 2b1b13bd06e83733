"""Peer timings for the KernelBench convolution rows: PyTorch CPU (forward, backward-data,
backward-weights) and onnxruntime CPU (forward), float32, median of R runs after a warm-up.

    /work/peers-venv/bin/python Benchmarks/peers/conv_peers.py [--repeats R] [--json out.json]

A benchmark tool only (needs torch, onnxruntime, numpy, onnx); never part of `make test` or of the
product. Run it right after `KernelBench` so both see the same machine load; it prints the load
average it ran under.
"""
import argparse, json, os, statistics, sys, tempfile, time

import numpy as np
import onnx
from onnx import TensorProto, helper
import onnxruntime as ort
import torch

# (layer, input NCHW, out channels, kernel, padding) — the stride-1 rows of KernelBench.
LAYERS = [
    ("VGG16 conv1_2", (1, 64, 224, 224), 64, 3, 1),
    ("VGG16 conv3_1", (1, 128, 56, 56), 256, 3, 1),
    ("VGG16 conv5_1", (1, 512, 14, 14), 512, 3, 1),
    ("ResNet-50 1x1 64->256", (1, 64, 56, 56), 256, 1, 0),
    ("gapnet conv2, batch 64", (64, 32, 28, 28), 32, 3, 1),
    ("gapnet conv4, batch 64", (64, 64, 14, 14), 128, 3, 1),
]


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def onnx_conv(shape, out, k, pad, weight):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten().tolist())
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[k, k], pads=[pad] * 4)
    model = helper.make_model(helper.make_graph([node], "conv", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 13)])
    path = os.path.join(tempfile.mkdtemp(), "conv.onnx")
    onnx.save(model, path)
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, load average {os.getloadavg()}")
    rows = []
    for name, shape, out, k, pad in LAYERS:
        flops = 2.0 * shape[0] * out * (shape[2] + 2 * pad - k + 1) * (shape[3] + 2 * pad - k + 1) * shape[1] * k * k
        x = torch.rand(shape) * 2 - 1
        w = torch.rand((out, shape[1], k, k)) * 2 - 1
        y = torch.nn.functional.conv2d(x, w, padding=pad)
        dy = torch.rand(y.shape) * 2 - 1
        with torch.no_grad():
            fwd = median_ms(lambda: torch.nn.functional.conv2d(x, w, padding=pad), args.repeats)
        bd = median_ms(lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, padding=pad), args.repeats)
        bw = median_ms(lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, padding=pad), args.repeats)
        sess = onnx_conv(shape, out, k, pad, w.numpy())
        xn = x.numpy()
        ortf = median_ms(lambda: sess.run(None, {"x": xn}), args.repeats)
        for direction, peer, ms in [("forward", "onnxruntime", ortf), ("forward", "torch", fwd),
                                    ("backward-data", "torch", bd), ("backward-weights", "torch", bw)]:
            rows.append({"layer": name, "direction": direction, "peer": peer, "medianMilliseconds": ms, "gflops": flops / ms / 1e6})
            print(f"{name:28s}{direction:18s}{peer:12s}{ms:9.3f} ms {flops / ms / 1e6:8.2f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"loadAverage": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
