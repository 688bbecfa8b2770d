"""The LeNet-5 that the lenet crate implements, in PyTorch, and a reader for MNIST's gzipped IDX
files: shared by make_reference.py (the fixtures) and bench_pytorch.py (the speed peer)."""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_MEAN = 0.1307
INPUT_STD = 0.3081


def pool2_last_tie(x):
    """2x2/2 max pooling that breaks ties towards the last element instead of PyTorch's first:
    flipping both spatial axes maps every window of an even-sized map onto a window."""
    return torch.flip(F.max_pool2d(torch.flip(x, (2, 3)), 2, 2), (2, 3))


class LeNet5(nn.Module):
    def __init__(self, last_tie=False):
        super().__init__()
        self.pool = pool2_last_tie if last_tie else (lambda x: F.max_pool2d(x, 2, 2))
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # Normalising inside the model means conv1's zero padding is zero in normalised space,
        # which is what the Rust model must reproduce.
        x = (x - INPUT_MEAN) / INPUT_STD
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    got, count = struct.unpack(">II", data[:8])
    if got != magic:
        raise ValueError(f"{path}: magic {got:#010x}, expected {magic:#010x}")
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return np.frombuffer(data, dtype=np.uint8, offset=8).reshape(count)
