#!/usr/bin/env bash
# Installs the Debian 12 packages Boost.Tornado builds and tests with (only what is missing).
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config libboost1.81-all-dev libboost1.81-tools-dev
          meson clang-14 libssl-dev openssl python3-tornado python3-uvloop)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
