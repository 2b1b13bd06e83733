"""PyTorch CPU peer of SynthesisBench: the same activation-maximization step (class-logit objective,
Lucid Fourier parameterization with colour decorrelation and sigmoid, ImageNet normalization,
random roll, random scale and rotation, total variation, Adam; forward plus backward to the image,
no weight gradients) on VGG16 and ResNet-50 at 224x224, batch 1 and 8, random weights.
A peer for comparison only; never part of `make test`.

    /work/peers-venv/bin/python Benchmarks/peers/am_step_torch.py [--steps 3] [--batches 1,8]
"""
import argparse
import math
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn as nn

COLOR = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR = COLOR / np.max(np.linalg.norm(COLOR, axis=0))
FLOPS = {"vgg16": 30.95e9, "resnet50": 8.18e9}  # forward, batch 1, 2 per multiply-add (docs/METHODS)


def vgg16():
    """torchvision's VGG16 layout (random weights; torchvision is not installed in the peer venv)."""
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(),
                         nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), as torchvision's."""

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                  nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                  nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


def resnet50():
    layers, c = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)], 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            layers.append(Bottleneck(c, width, stride if i == 0 else 1))
            c = width * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


MODELS = {"vgg16": vgg16, "resnet50": resnet50}


def spectrum_scale(h, w, decay=1.0):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.maximum(np.sqrt(fy * fy + fx * fx), 1.0 / max(h, w))
    return torch.tensor(np.sqrt(h * w) / 4.0 / f ** decay, dtype=torch.float32)


def step_fn(model, n, h=224, w=224):
    scale = spectrum_scale(h, w)
    spectrum = (0.01 * torch.randn(n, 3, h, w // 2 + 1, 2)).requires_grad_(True)
    opt = torch.optim.Adam([spectrum], lr=0.05)
    color = torch.tensor(COLOR)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    classes = torch.arange(n)

    def step():
        opt.zero_grad()
        z = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w))
        x01 = torch.sigmoid(torch.einsum("cd,ndhw->nchw", color, z))
        x = (x01 - mean) / std
        x = torch.roll(x, shifts=(int(np.random.randint(-2, 3)), int(np.random.randint(-2, 3))), dims=(2, 3))
        s = np.random.uniform(0.95, 1.05)
        a = math.radians(np.random.uniform(-5, 5))
        theta = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0], [math.sin(a) / s, math.cos(a) / s, 0]], dtype=torch.float32)
        grid = F.affine_grid(theta.expand(n, 2, 3), x.shape, align_corners=True)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        logits = model(x)
        tv = ((x01[:, :, :, 1:] - x01[:, :, :, :-1]) ** 2).sum() + ((x01[:, :, 1:, :] - x01[:, :, :-1, :]) ** 2).sum()
        loss = -logits[torch.arange(n), classes].sum() + 1e-3 * tv
        loss.backward()
        opt.step()

    return step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--models", default="vgg16,resnet50")
    args = p.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} timed steps after one warm-up step")
    print("| model | batch | s/step | steps/s | GFLOP/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model = MODELS[name]().eval()
        for p_ in model.parameters():
            p_.requires_grad_(False)
        for n in [int(b) for b in args.batches.split(",")]:
            step = step_fn(model, n)
            step()
            t = time.perf_counter()
            for _ in range(args.steps):
                step()
            per = (time.perf_counter() - t) / args.steps
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {name} | {n} | {per:.2f} | {1 / per:.3f} | {2 * FLOPS[name] * n / per / 1e9:.1f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
