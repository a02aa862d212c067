#!/usr/bin/env bash
# Builds and runs the whole test suite with CMake and GCC (installs the Debian packages it
# needs first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/test -j2
ctest --test-dir build/test -j2 --output-on-failure
