#!/usr/bin/env bash
# Native training throughput and single-image latency of this crate next to PyTorch's, for the
# same LeNet-5, one thread, batch 64, real MNIST, on this machine. PyTorch's side runs when
# `import torch` works (pip install torch); ours always does.
#
#   bash tests/pytorch/bench.sh [MNIST_DIR]      (default: $MNIST_DIR, else ../shared/data/mnist)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-${MNIST_DIR:-../shared/data/mnist}}
[ -d "$dir" ] || { echo "bench: no MNIST folder at $dir (pass one, or set MNIST_DIR)" >&2; exit 2; }

cargo build --release --quiet
ours=$(./target/release/lenet bench --data "$dir" --json | tail -n 1)
if python3 -c 'import torch' 2>/dev/null; then
  theirs=$(python3 tests/pytorch/bench_pytorch.py --data "$dir" | tail -n 1)
else
  echo "bench: torch is not installed; showing this crate alone" >&2
  theirs='{}'
fi
python3 - "$ours" "$theirs" <<'PY'
import json, platform, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"LeNet-5, one thread, batch 64, real MNIST; {cpu}")
print("| implementation | training, examples/s | predict, ms per image (median of 1,000) |")
print("| --- | ---: | ---: |")
print(f"| lenet (this crate) | {ours['train_examples_per_s']:,.0f} | {ours['predict_ms']:.4f} |")
if theirs:
    print(f"| PyTorch {theirs.get('torch', '')} | {theirs['train_examples_per_s']:,.0f} | {theirs['predict_ms']:.4f} |")
    print(f"| lenet ÷ PyTorch | {ours['train_examples_per_s'] / theirs['train_examples_per_s']:.2f}× | "
          f"{theirs['predict_ms'] / ours['predict_ms']:.2f}× faster |")
PY
