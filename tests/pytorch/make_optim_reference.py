#!/usr/bin/env python3
"""Writes tests/fixtures/optim_reference.safetensors: three steps of torch.optim.SGD, Adam and
AdamW on LeNet-5's parameters, the ground truth for the Rust optimisers (tests/optim.rs).

Usage (from the repository root):
    pip install torch safetensors numpy
    python3 tests/pytorch/make_optim_reference.py [--out FILE]

The output is deterministic: running it again with the same torch version gives the same bytes.

Unlike make_reference.py, the optimisers run in float32: the point is to reproduce PyTorch's
float32 update arithmetic, so the stored parameters are what torch.optim computes on float32
tensors (its CPU single-tensor path, foreach=False). Every hyper-parameter is rounded to float32
before PyTorch sees it, so that PyTorch and a float32 configuration start from identical values.

Tensors (float32; see tests/pytorch/README.md):
  conv1.weight ... fc3.bias            initial parameters, torch.manual_seed(0) LeNet-5
  grad<k>.<param>, k = 1, 2, 3         the gradient given to step k, the same for every optimiser
  <opt>.step<k>.<param>, opt = sgd, adam, adamw
                                       the parameters after step k
Metadata: <opt>.config (JSON, the Rust OptimizerConfig's field names), <opt>.learning_rates
(JSON list, one per step: lr, lr, lr/10, set on the param group before each step), versions.
"""

import argparse
import json
import struct
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import save

from lenet_torch import LeNet5

REPO = Path(__file__).resolve().parents[2]
PARAM_COUNT = 61_706
STEPS = 3
GRAD_SEED = 1


def f32(x: float) -> float:
    """x rounded to the nearest float32, as a Python float (exactly representable in both)."""
    return float(np.float32(x))


def learning_rates(lr: float) -> list:
    return [f32(lr), f32(lr), f32(np.float32(lr) / np.float32(10))]


# name → (torch optimiser, its keyword arguments, the Rust OptimizerConfig, learning rates)
def optimizers() -> dict:
    sgd_lr, adam_lr = learning_rates(0.01), learning_rates(1e-3)
    betas, eps = (f32(0.9), f32(0.999)), f32(1e-8)
    return {
        "sgd": (
            torch.optim.SGD,
            dict(momentum=f32(0.9), weight_decay=f32(5e-4)),
            dict(kind="sgd", momentum=f32(0.9), weight_decay=f32(5e-4)),
            sgd_lr,
        ),
        "adam": (
            torch.optim.Adam,
            dict(betas=betas, eps=eps, weight_decay=f32(1e-4)),
            dict(kind="adam", beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=f32(1e-4)),
            adam_lr,
        ),
        "adamw": (
            torch.optim.AdamW,
            dict(betas=betas, eps=eps, weight_decay=f32(1e-2)),
            dict(kind="adamw", beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=f32(1e-2)),
            adam_lr,
        ),
    }


def canonical_safetensors(blob: bytes) -> bytes:
    """safetensors writes metadata in hash-map order, which changes from run to run; sorting
    the header keys makes a regenerated fixture byte-identical, so git shows real changes only."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def gradients(init: dict) -> list:
    """One gradient per parameter and step: random signs and magnitudes log-uniform over
    10^-9 .. 1, so that every regime of Adam's denominator occurs (|g| far above, near and
    below eps = 1e-8), with 1 element in 50 exactly zero."""
    gen = torch.Generator().manual_seed(GRAD_SEED)
    out = []
    for _ in range(STEPS):
        step = {}
        for name, p in init.items():
            sign = torch.randn(p.shape, generator=gen).sign()
            magnitude = 10.0 ** (-9.0 * torch.rand(p.shape, generator=gen, dtype=torch.float64))
            keep = torch.rand(p.shape, generator=gen) >= 0.02
            step[name] = (sign * magnitude * keep).to(torch.float32)
        out.append(step)
    return out


def run(opt_class, kwargs: dict, lrs: list, init: dict, grads: list, dtype) -> list:
    """The parameters after each step of opt_class on copies of init, computed in dtype."""
    params = {name: torch.nn.Parameter(v.to(dtype).clone()) for name, v in init.items()}
    opt = opt_class(list(params.values()), lr=lrs[0], foreach=False, **kwargs)
    after = []
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        for name, p in params.items():
            p.grad = grads[k][name].to(dtype).clone()
        opt.step()
        after.append({name: p.detach().clone() for name, p in params.items()})
    return after


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/optim_reference.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(1)

    torch.manual_seed(0)
    model = LeNet5()
    init = {name: p.detach().to(torch.float32).contiguous() for name, p in model.named_parameters()}
    assert sum(v.numel() for v in init.values()) == PARAM_COUNT
    grads = gradients(init)

    out = dict(init)
    for k, step in enumerate(grads, 1):
        out.update({f"grad{k}.{name}": g for name, g in step.items()})
    metadata = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "init_seed": "0",
        "grad_seed": str(GRAD_SEED),
        "steps": str(STEPS),
    }
    for opt_name, (opt_class, kwargs, config, lrs) in optimizers().items():
        after32 = run(opt_class, kwargs, lrs, init, grads, torch.float32)
        after64 = run(opt_class, kwargs, lrs, init, grads, torch.float64)
        for k, params in enumerate(after32, 1):
            out.update({f"{opt_name}.step{k}.{name}": p for name, p in params.items()})
        moved = max((after32[-1][n] - init[n]).abs().max().item() for n in init)
        vs64 = max((after32[k][n].double() - after64[k][n]).abs().max().item() for k in range(STEPS) for n in init)
        print(f"{opt_name}: largest move from the start {moved:.3e}; float32 vs float64 torch {vs64:.3e}")
        metadata[f"{opt_name}.config"] = json.dumps(dict(learning_rate=lrs[0], **config), sort_keys=True)
        metadata[f"{opt_name}.learning_rates"] = json.dumps(lrs)

    blob = canonical_safetensors(save({k: v.contiguous() for k, v in out.items()}, metadata=metadata))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(blob)
    print(f"wrote {args.out} ({len(blob):,} bytes, {len(out)} tensors)")


if __name__ == "__main__":
    main()
