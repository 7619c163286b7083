#!/usr/bin/env bash
# Installs the Debian packages Brook builds with, only those that are missing.
set -euo pipefail
pkgs=(cmake ninja-build g++ ccache pkg-config
      libboost-dev libboost-system-dev libprotobuf-dev protobuf-compiler
      libabsl-dev libspdlog-dev libfmt-dev libzstd-dev
      libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing packages: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
