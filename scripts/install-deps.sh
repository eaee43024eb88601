#!/usr/bin/env bash
# Installs the Debian packages qbert needs, only those missing.
#   scripts/install-deps.sh           build: gcc, cmake, make, utf8proc, jansson
#   scripts/install-deps.sh --test    also what the test suite uses (numpy
#                                     regenerates the random-weight golden models)
#   scripts/install-deps.sh --fuzz    also clang and libFuzzer, for
#                                     the fuzz build (tests/fuzz, -DQB_FUZZ=ON)
set -euo pipefail
pkgs=(gcc make cmake pkg-config libutf8proc-dev libjansson-dev)
[ "${1:-}" = "--test" ] && pkgs+=(python3 python3-numpy)
# libFuzzer's runtime ships with clang's (libclang-rt); it must match clang's version.
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev libfuzzer-14-dev python3)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
