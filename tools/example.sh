#!/usr/bin/env bash
# Builds and runs the flagship example (installs the Debian packages it needs first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build/example -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBOOST_TORNADO_BUILD_TESTS=OFF -DBOOST_TORNADO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/example --target example_flagship -j2
./build/example/example/example_flagship
