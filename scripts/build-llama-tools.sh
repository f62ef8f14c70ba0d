#!/usr/bin/env bash
# llama.cpp's own tools — llama-perplexity, llama-server, llama-imatrix, llama-bench, llama-quantize —
# built from the same vendored source as the installed llama-cpp-python (its sdist carries
# vendor/llama.cpp), portably (no -march=native: these VMs advertise AMX that a native build uses and
# then crashes elsewhere), statically linked, once per version and flags into a cache shared by every
# checkout on this machine; the venv's bin/ gets links to them.
#   usage: scripts/build-llama-tools.sh [venv python]
set -euo pipefail
PY=${1:-.venv/bin/python}
BIN=$(dirname "$PY")
VER=$("$PY" -c "import llama_cpp; print(llama_cpp.__version__)")
FLAGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DCMAKE_BUILD_TYPE=Release"
TOOLS="llama-perplexity llama-server llama-imatrix llama-bench llama-quantize"
KEY=$(echo "$VER $FLAGS $TOOLS" | sha256sum | cut -c1-12)
CACHE="${PUYU_LAB_CACHE:-$HOME/.cache/puyu-lab}/llama-tools-$VER-$KEY"

have_all() { for t in $TOOLS; do [ -x "$CACHE/bin/$t" ] || return 1; done; }

if ! have_all; then
  echo "building llama.cpp's tools ($TOOLS) from the llama-cpp-python $VER source: about 8 minutes on 2 cores, once"
  start=$(date +%s)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$work" 2>&1 | grep -v "^WARNING: Location" || true
  sdist=$(ls "$work"/llama_cpp_python-*.tar.gz 2>/dev/null | head -1)
  [ -n "$sdist" ] || { echo "error: could not fetch the llama-cpp-python $VER source (the package registry is needed once)" >&2; exit 1; }
  tar xzf "$sdist" -C "$work"
  src=$(ls -d "$work"/llama_cpp_python-*/vendor/llama.cpp)
  # shellcheck disable=SC2086
  cmake -S "$src" -B "$work/build" $FLAGS > "$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
  # shellcheck disable=SC2086
  cmake --build "$work/build" -j"$(nproc)" --target $TOOLS > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$(dirname "$CACHE")"
  part="$CACHE.partial.$$"
  mkdir -p "$part/bin"
  for t in $TOOLS; do cp "$work/build/bin/$t" "$part/bin/"; done
  echo "$VER $FLAGS" > "$part/BUILD"
  rm -rf "$CACHE" && mv "$part" "$CACHE"   # complete or not there: never half-built
  echo "llama.cpp tools built in $(( $(date +%s) - start )) s → $CACHE"
fi
for t in $TOOLS; do ln -sf "$CACHE/bin/$t" "$BIN/$t"; done
"$BIN/llama-perplexity" --version 2>&1 | grep -m1 -i "version" || true
