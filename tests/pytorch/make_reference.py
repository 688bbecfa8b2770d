#!/usr/bin/env python3
"""Writes tests/fixtures/pytorch_reference.safetensors: PyTorch ground truth for the Rust LeNet-5.

Usage (from the repository root):
    pip install torch safetensors numpy
    python3 tests/pytorch/make_reference.py [--mnist DIR] [--out FILE]

The output is deterministic: running it again with the same torch version gives the same bytes.

Everything is *computed* in float64 and *stored* as float32. Weights and inputs are created in
float32 first and only then widened, so the stored tensors are exactly the values the float64
computation used; the stored outputs are float64 truth rounded once to float32. A float32
implementation should therefore match them to within its own rounding error only.

Tensors (see tests/pytorch/README.md for shapes and conventions):
  LeNet-5 on the first 4 MNIST test images
    input, labels, conv1.weight ... fc3.bias, logits, probs, loss,
    grad.<param> for every parameter,
    step2.<param> after two SGD steps, step_losses
  layer checks with awkward settings
    conv_s2.*  Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    pool_ov.*  MaxPool2d(kernel_size=3, stride=2), windows overlap
"""

import argparse
import json
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save

from lenet_torch import INPUT_MEAN, INPUT_STD, LeNet5, read_idx

REPO = Path(__file__).resolve().parents[2]
N = 4
EXPECTED_LABELS = [7, 2, 1, 0]
PARAM_COUNT = 61_706

LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SGD_STEPS = 2



def canonical_safetensors(blob: bytes) -> bytes:
    """safetensors writes metadata in hash-map order, which changes from run to run; sorting
    the header keys makes a regenerated fixture byte-identical, so git shows real changes only."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def positive_pool_ties(x: torch.Tensor, kernel: int, stride: int) -> int:
    """Windows whose maximum is shared by two elements. Zeros after ReLU do not count: ReLU's
    gradient there is 0 whichever element gets it."""
    win = x.unfold(2, kernel, stride).unfold(3, kernel, stride).flatten(-2)
    top2 = win.topk(2, dim=-1).values
    return int(((top2[..., 0] == top2[..., 1]) & (top2[..., 0] != 0)).sum())


def grads_and_step2(model: nn.Module, init: dict, x: torch.Tensor, y: torch.Tensor):
    model.load_state_dict({k: v.double() for k, v in init.items()})
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    model.zero_grad()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}

    model.load_state_dict({k: v.double() for k, v in init.items()})
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    losses = []
    for _ in range(SGD_STEPS):
        opt.zero_grad()
        step_loss = F.cross_entropy(model(x), y)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.detach())
    assert torch.equal(losses[0], loss.detach())
    step2 = {name: p.detach().clone() for name, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads, torch.stack(losses), step2


def lenet_tensors(mnist: Path) -> dict:
    out = {}
    images = read_idx(mnist / "t10k-images-idx3-ubyte.gz", 0x803)
    labels = read_idx(mnist / "t10k-labels-idx1-ubyte.gz", 0x801)
    x32 = torch.from_numpy(images[:N].astype(np.float32) / np.float32(255.0)).reshape(N, 1, 28, 28)
    y = torch.from_numpy(labels[:N].astype(np.int64))
    assert y.tolist() == EXPECTED_LABELS, y.tolist()

    torch.manual_seed(0)
    model32 = LeNet5()
    n_params = sum(p.numel() for p in model32.parameters())
    assert n_params == PARAM_COUNT, n_params
    init32 = {k: f32(v) for k, v in model32.state_dict().items()}

    x = x32.double()
    out["input"] = f32(x32)
    out["labels"] = y
    out.update(init32)

    logits, loss, grads, losses, step2 = grads_and_step2(LeNet5().double(), init32, x, y)

    # MNIST's flat background makes conv outputs exactly equal across whole regions, so many
    # pooling windows have a tied maximum and PyTorch sends the gradient to the first of them.
    # Those tied elements see identical input patches, so the parameter gradients must not
    # depend on the tie rule: prove it, so that a Rust argmax need not copy PyTorch's rule.
    model = LeNet5().double()
    model.load_state_dict({k: v.double() for k, v in init32.items()})
    with torch.no_grad():
        h1 = F.relu(model.conv1((x - INPUT_MEAN) / INPUT_STD))
        h2 = F.relu(model.conv2(F.max_pool2d(h1, 2, 2)))
    ties = (positive_pool_ties(h1, 2, 2), positive_pool_ties(h2, 2, 2))
    _, _, grads_l, losses_l, step2_l = grads_and_step2(LeNet5(last_tie=True).double(), init32, x, y)
    for name in grads:
        for a, b in ((grads[name], grads_l[name]), (step2[name], step2_l[name])):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(losses, losses_l, rtol=0, atol=0)

    out["logits"] = f32(logits)
    out["probs"] = f32(F.softmax(logits, dim=1))
    out["loss"] = f32(loss.reshape(1))
    for name, g in grads.items():
        out[f"grad.{name}"] = f32(g)
    out["step_losses"] = f32(losses)
    for name, p in step2.items():
        out[f"step2.{name}"] = f32(p)
    print(f"tied pooling windows (positive maximum): pool1 {ties[0]}, pool2 {ties[1]}; "
          "parameter gradients agree under first- and last-element tie rules")
    return out


def conv_s2_tensors() -> dict:
    torch.manual_seed(1)
    conv32 = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    x32 = torch.randn(2, 3, 9, 9)
    g32 = torch.randn(2, 4, 5, 5)

    conv = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1).double()
    conv.load_state_dict({k: v.double() for k, v in conv32.state_dict().items()})
    x = x32.double().requires_grad_(True)
    y = conv(x)
    assert y.shape == g32.shape, y.shape
    y.backward(g32.double())
    return {
        "conv_s2.weight": f32(conv32.weight),
        "conv_s2.bias": f32(conv32.bias),
        "conv_s2.input": f32(x32),
        "conv_s2.output": f32(y),
        "conv_s2.grad_output": f32(g32),
        "conv_s2.grad_input": f32(x.grad),
        "conv_s2.grad_weight": f32(conv.weight.grad),
        "conv_s2.grad_bias": f32(conv.bias.grad),
    }


def pool_ov_tensors() -> dict:
    torch.manual_seed(2)
    x32 = torch.randn(2, 3, 9, 9)
    g32 = torch.randn(2, 3, 4, 4)
    # Here a tie would change grad_input itself, so there must be none.
    assert positive_pool_ties(x32, 3, 2) == 0 and (x32 != 0).all()
    x = x32.double().requires_grad_(True)
    y = F.max_pool2d(x, kernel_size=3, stride=2)
    assert y.shape == g32.shape, y.shape
    y.backward(g32.double())
    return {
        "pool_ov.input": f32(x32),
        "pool_ov.output": f32(y),
        "pool_ov.grad_output": f32(g32),
        "pool_ov.grad_input": f32(x.grad),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "pytorch_reference.safetensors")
    args = ap.parse_args()

    # One thread fixes the float64 summation order; the float32 rounding then hides nothing.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    tensors = {}
    tensors.update(lenet_tensors(args.mnist))
    tensors.update(conv_s2_tensors())
    tensors.update(pool_ov_tensors())

    metadata = {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "compute_dtype": "float64",
        "stored_dtype": "float32 (labels int64)",
        "input_mean": repr(INPUT_MEAN),
        "input_std": repr(INPUT_STD),
        "normalisation": "(x - input_mean) / input_std inside the model, before conv1's zero padding",
        "batch": str(N),
        "mnist_source": "t10k-images-idx3-ubyte.gz, images 0..3, bytes/255",
        "param_count": str(PARAM_COUNT),
        "init": "torch.manual_seed(0) then LeNet5() with PyTorch default init, float32",
        "loss": "cross_entropy, mean over the batch",
        "sgd_lr": repr(LR),
        "sgd_momentum": repr(MOMENTUM),
        "sgd_weight_decay": repr(WEIGHT_DECAY),
        "sgd_dampening": "0",
        "sgd_nesterov": "false",
        "sgd_steps": str(SGD_STEPS),
        "sgd_rule": "g = grad + wd*p (biases too); buf = g on step 1, else momentum*buf + g; p -= lr*buf",
        "conv_s2": "Conv2d(3, 4, kernel_size=3, stride=2, padding=1), torch.manual_seed(1)",
        "pool_ov": "MaxPool2d(kernel_size=3, stride=2), torch.manual_seed(2)",
        "maxpool_ties": "LeNet pools have tied windows; parameter grads are the same whichever tied element takes the gradient",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(canonical_safetensors(save(tensors, metadata=metadata)))

    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(tensors)} tensors)")
    print(f"loss {tensors['loss'].item():.9g}  step_losses {tensors['step_losses'].tolist()}")
    for k in sorted(tensors):
        t = tensors[k]
        print(f"  {k:24s} {str(t.dtype).removeprefix('torch.'):8s} {tuple(t.shape)}")


if __name__ == "__main__":
    main()
