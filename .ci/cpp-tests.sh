#!/usr/bin/env bash
# Builds the C++ core with its GoogleTest unit tests (tests/cpp) and runs them
# through ctest. Installs GoogleTest, CMake and Ninja from Debian when missing.
# Last line is ctest's own summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}

missing=()
[[ -e /usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake || -n $(find /usr/lib -name GTestConfig.cmake -print -quit 2>/dev/null) ]] ||
  missing+=(libgtest-dev)
if ((${#missing[@]})); then
  SUDO=
  ((EUID == 0)) || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
for tool in cmake ninja; do
  command -v $tool >/dev/null || "$PYTHON" -m pip install -q "$tool"
done

BUILD=$ROOT/build/cpp-tests
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DEDGEPIPE_BUILD_TOOLS=OFF -DEDGEPIPE_BUILD_TESTS=ON -DEDGEPIPE_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -- -j2
ctest --test-dir "$BUILD" --output-on-failure -j2
