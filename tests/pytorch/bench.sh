#!/usr/bin/env bash
# Native training throughput and single-image latency of this crate next to PyTorch's, for the
# same LeNet-5, batch 64, real MNIST, on this machine: one thread, then two (`lenet bench
# --threads 2` beside `torch.set_num_threads(2)`), with each side's speed-up from one thread to
# two (ours from rounds alternating with a one-thread session, so both see the same moments).
# PyTorch's side runs when `import torch` works in $PYTHON (default python3; pip install torch);
# ours always does. The 1-minute load average is printed beside every figure: other
# work on the machine lowers them.
#
#   bash tests/pytorch/bench.sh [MNIST_DIR]      (default: $MNIST_DIR, else ../shared/data/mnist)
#   PYTHON=/path/to/venv/bin/python bash tests/pytorch/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-${MNIST_DIR:-../shared/data/mnist}}
[ -d "$dir" ] || { echo "bench: no MNIST folder at $dir (pass one, or set MNIST_DIR)" >&2; exit 2; }
python=${PYTHON:-python3}

load() { cut -d' ' -f1 /proc/loadavg; }
# Each measurement as one JSON line, with the load average at its start and end added.
measure() {
  local before after line
  before=$(load)
  line=$("$@" | tail -n 1)
  after=$(load)
  printf '%s\n' "${line%\}},\"load_before\":$before,\"load_after\":$after}"
}

cargo build --release --quiet
ours1=$(measure ./target/release/lenet bench --data "$dir" --threads 1 --json)
ours2=$(measure ./target/release/lenet bench --data "$dir" --threads 2 --against-one-thread --rounds 10 --steps 200 --json)
if "$python" -c 'import torch' 2>/dev/null; then
  theirs1=$(measure "$python" tests/pytorch/bench_pytorch.py --data "$dir" --threads 1)
  theirs2=$(measure "$python" tests/pytorch/bench_pytorch.py --data "$dir" --threads 2)
else
  echo "bench: torch is not installed for $python; showing this crate alone" >&2
  theirs1='{}'
  theirs2='{}'
fi
python3 - "$ours1" "$ours2" "$theirs1" "$theirs2" <<'PY'
import json, os, platform, sys
ours1, ours2, theirs1, theirs2 = (json.loads(a) for a in sys.argv[1:])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"LeNet-5, batch 64, real MNIST; {cpu}, {os.cpu_count()} logical cores")
print("| implementation | threads | training, examples/s | predict, ms per image (median of 1,000) | load average (1 min, start → end) |")
print("| --- | ---: | ---: | ---: | --- |")
def row(name, r):
    print(f"| {name} | {r['threads']} | {r['train_examples_per_s']:,.0f} | {r['predict_ms']:.4f} | {r['load_before']:.2f} → {r['load_after']:.2f} |")
row("lenet (this crate)", ours1)
row("lenet (this crate)", ours2)
if theirs1:
    row(f"PyTorch {theirs1.get('torch', '')}", theirs1)
    row(f"PyTorch {theirs2.get('torch', '')}", theirs2)
print()
print(f"- lenet, 2 threads ÷ 1 thread (training), in 10 rounds alternating with a 1-thread session: "
      f"{ours2['train_examples_per_s'] / ours2['one_thread_examples_per_s']:.2f}× (fastest rounds: "
      f"{ours2['train_examples_per_s']:,.0f} and {ours2['one_thread_examples_per_s']:,.0f}), "
      f"{ours2['median_speedup']:.2f}× (median of the rounds' ratios)")
if theirs1:
    print(f"- PyTorch, 2 threads ÷ 1 thread (training): {theirs2['train_examples_per_s'] / theirs1['train_examples_per_s']:.2f}×")
    for t, (o, p) in ((1, (ours1, theirs1)), (2, (ours2, theirs2))):
        print(f"- lenet ÷ PyTorch, {t} thread(s): training {o['train_examples_per_s'] / p['train_examples_per_s']:.2f}×, "
              f"predict {p['predict_ms'] / o['predict_ms']:.2f}× faster")
PY
