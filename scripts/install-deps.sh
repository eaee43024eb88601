#!/usr/bin/env bash
# Installs the Debian packages qbert needs, only those missing.
#   scripts/install-deps.sh           build: gcc, cmake, make, utf8proc, jansson, libmicrohttpd,
#                                     protobuf-c and onnx.proto (python3-onnx) for export
#   scripts/install-deps.sh --test    also what the test suite uses (numpy
#                                     regenerates the random-weight golden models;
#                                     curl, wrk, node and npm drive qbert serve;
#                                     bench/onnx's onnxruntime-node checks the ONNX export;
#                                     dask for tests/test_dask.sh)
#   scripts/install-deps.sh --fuzz    also clang and libFuzzer, for
#                                     the fuzz build (tests/fuzz, -DQB_FUZZ=ON)
#   scripts/install-deps.sh --arm64 DIR  the aarch64 cross compiler and qemu, and
#                                     utf8proc, jansson and protobuf-c from Debian's arm64
#                                     packages unpacked into the sysroot DIR
set -euo pipefail
pkgs=(gcc make cmake pkg-config libutf8proc-dev libjansson-dev libmicrohttpd-dev
      protobuf-c-compiler libprotobuf-c-dev python3-onnx)
[ "${1:-}" = "--test" ] && pkgs+=(python3 python3-numpy python3-dask python3-distributed curl wrk time)
# Node may come from elsewhere (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm package): Debian's is installed only where none runs.
if [ "${1:-}" = "--test" ] && ! { command -v node && command -v npm; } >/dev/null; then
  pkgs+=(nodejs npm)
fi
# libFuzzer's runtime ships with clang's (libclang-rt); it must match clang's version.
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev libfuzzer-14-dev python3)
[ "${1:-}" = "--arm64" ] && pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user binutils-aarch64-linux-gnu time)

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# The arm64 libraries are only unpacked (dpkg -x), never installed, so the
# host's own packages stay as they are.
arm64_sysroot() {
  local dir=$1 debs=(libutf8proc-dev libutf8proc2 libjansson-dev libjansson4 libprotobuf-c-dev libprotobuf-c1)
  [ -f "$dir/usr/include/utf8proc.h" ] && [ -f "$dir/usr/include/jansson.h" ] &&
    [ -f "$dir/usr/include/protobuf-c/protobuf-c.h" ] && return 0
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
  fi
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp" # apt fetches as _apt
  (cd "$tmp" && apt-get download -qq "${debs[@]/%/:arm64}")
  mkdir -p "$dir"
  for d in "$tmp"/*.deb; do dpkg -x "$d" "$dir"; done
  rm -rf "$tmp"
}

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ONNX Runtime from npm, as package-lock.json pins it; --ignore-scripts: its
# postinstall fetches CUDA binaries, and the CPU library is in the tarball.
ort=$(cd "$(dirname "$0")/../bench/onnx" && pwd)
if [ "${1:-}" = "--test" ] && [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
  echo "installing: onnxruntime-node (npm, bench/onnx)" >&2
  (cd "$ort" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi
[ "${1:-}" = "--arm64" ] && arm64_sysroot "${2:?--arm64 needs the sysroot directory}"
exit 0
