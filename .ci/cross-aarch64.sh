#!/usr/bin/env bash
# Cross-compiles the C++ core and tools for aarch64 Linux with the
# linux-aarch64 preset and proves the result under qemu-user:
#   - edgepipe_verify accepts the packaged default model and rejects a
#     corrupted copy (exit 2);
#   - edgepipe_run runs the default model on the aarch64 libLiteRt.so from
#     the ai-edge-litert wheel, and its output checksums match the same tool
#     built natively (dev preset) on the x86-64 wheel, within float tolerance.
#
# Idempotent: packages are installed only when missing, wheels are cached in
# $EDGEPIPE_CROSS_CACHE (default ~/.cache/edgepipe-cross), builds reuse
# build/<preset>. Last line: "cross-aarch64: N passed, M failed[, K skipped]".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EDGEPIPE_CROSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgepipe-cross}
LITERT_VERSION=2.3.0
SYSROOT=/usr/aarch64-linux-gnu
PYTHON=${PYTHON:-python3}
MODEL=$ROOT/python/edgepipe/models/default.tflite
RUNS=3
START=$SECONDS

passed=0 failed=0 skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }
phase() { echo "== [$((SECONDS - START))s] $*"; }
die() { echo "cross-aarch64: error: $*" >&2; exit 1; }

# --- 1. Toolchain, emulator, target libc/libstdc++ --------------------------
phase "toolchain"
find_qemu() { command -v qemu-aarch64 || command -v qemu-aarch64-static || true; }
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
[[ -n $(find_qemu) ]] || missing+=(qemu-user)
[[ -e $SYSROOT/lib/libc.so.6 && -e $SYSROOT/lib/libstdc++.so.6 ]] ||
  missing+=(libc6-dev-arm64-cross libstdc++6-arm64-cross)
if ((${#missing[@]})); then
  SUDO=
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    SUDO=sudo
  fi
  echo "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
QEMU=$(find_qemu)
[[ -n $QEMU ]] || die "qemu-aarch64 not found after install"
for tool in cmake ninja; do
  command -v $tool >/dev/null || "$PYTHON" -m pip install -q "$tool"
done

# --- 2. LiteRT runtimes from the PyPI wheels (aarch64 + x86-64) -------------
phase "LiteRT $LITERT_VERSION wheels"
fetch_litert() {  # $1 = platform tag; prints the extracted libLiteRt.so path
  local tag=$1 dir=$CACHE/litert-$LITERT_VERSION/$1
  if [[ ! -s $dir/libLiteRt.so ]]; then
    mkdir -p "$CACHE/wheels" "$dir"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --platform "$tag" \
      --python-version 311 -d "$CACHE/wheels" "ai-edge-litert==$LITERT_VERSION" >&2
    "$PYTHON" - "$CACHE/wheels" "$tag" "$dir" <<'EOF'
import pathlib, sys, zipfile
wheels, tag, out = sys.argv[1:]
(whl,) = [p for p in pathlib.Path(wheels).glob("ai_edge_litert-*.whl") if tag in p.name]
data = zipfile.ZipFile(whl).read("ai_edge_litert/libLiteRt.so")
tmp = pathlib.Path(out, "libLiteRt.so.tmp")
tmp.write_bytes(data)
tmp.rename(tmp.with_suffix(""))  # atomic: a half-written file is never cached
EOF
  fi
  echo "$dir/libLiteRt.so"
}
LIB_ARM=$(fetch_litert manylinux_2_27_aarch64)
LIB_X86=$(fetch_litert manylinux_2_27_x86_64)

needed_ok=1
for lib in $(aarch64-linux-gnu-readelf -d "$LIB_ARM" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
  [[ -e $SYSROOT/lib/$lib ]] || { echo "  $lib missing from $SYSROOT/lib"; needed_ok=0; }
done
if ((needed_ok)); then pass "aarch64 libLiteRt.so: every NEEDED library is in $SYSROOT"
else fail "aarch64 libLiteRt.so needs libraries the sysroot lacks"; fi

# --- 3. Builds ---------------------------------------------------------------
cd "$ROOT"
phase "build linux-aarch64"
cmake --preset linux-aarch64 >/dev/null
cmake --build --preset linux-aarch64
phase "build dev (native, for the reference checksums)"
cmake --preset dev >/dev/null
cmake --build --preset dev
ARM=$ROOT/build/linux-aarch64
X86=$ROOT/build/dev

machine=$(aarch64-linux-gnu-readelf -h "$ARM/edgepipe_run" | sed -n 's/ *Machine: *//p')
if [[ $machine == AArch64 ]]; then pass "edgepipe_run is an AArch64 executable"
else fail "edgepipe_run is built for '$machine', not AArch64"; fi

# --- 4. Under qemu -----------------------------------------------------------
# LiteRT's CPU detection (cpuinfo, via XNNPACK) parses /proc/cpuinfo. QEMU
# before 8.1 passes the host's x86 file through, and libLiteRt.so then
# segfaults (SIGSEGV at address 0x8) while compiling. There we show it an
# aarch64-style file through a private bind mount; newer QEMU emulates the
# file itself.
phase "qemu ($($QEMU --version | head -1))"
WORK=$CACHE/work
mkdir -p "$WORK"
qemu_ver=$($QEMU --version | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
litert_mode=plain
if [[ $(printf '%s\n' "$qemu_ver" 8.1 | sort -V | head -1) != 8.1 ]]; then
  if unshare --mount --propagation private true 2>/dev/null; then
    litert_mode=fake-cpuinfo
    FAKE_CPUINFO=$WORK/cpuinfo-aarch64
    for ((i = 0; i < $(nproc); i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
    done >"$FAKE_CPUINFO"
  else
    litert_mode=none
  fi
fi
on_arm() { "$QEMU" -L "$SYSROOT" "$@"; }
on_arm_litert() {
  if [[ $litert_mode == fake-cpuinfo ]]; then
    unshare --mount --propagation private sh -c \
      'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$FAKE_CPUINFO" "$QEMU" -L "$SYSROOT" "$@"
  else
    on_arm "$@"
  fi
}
status() { local rc=0; "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?; echo $rc; }

CORRUPT=$WORK/corrupt.tflite
cp "$MODEL" "$CORRUPT"
# Root table offset far past the end of the file.
printf '\xff\xff\xff\x7f' | dd of="$CORRUPT" bs=1 count=4 conv=notrunc status=none

rc=$(status on_arm "$ARM/edgepipe_verify" "$MODEL")
if [[ $rc == 0 ]] && grep -q '^OK ' "$WORK/out"; then pass "qemu: edgepipe_verify default model: $(cat "$WORK/out")"
else fail "qemu: edgepipe_verify default model exited $rc: $(cat "$WORK/err")"; fi

rc=$(status on_arm "$ARM/edgepipe_verify" "$CORRUPT")
if [[ $rc == 2 ]] && grep -q '^error: ' "$WORK/err"; then pass "qemu: edgepipe_verify corrupted copy -> exit 2: $(cat "$WORK/err")"
else fail "qemu: edgepipe_verify corrupted copy exited $rc (want 2)"; fi

if [[ $litert_mode == none ]]; then
  skip "qemu $qemu_ver passes the host /proc/cpuinfo through and unshare is not allowed here, so libLiteRt.so cannot run under it: no edgepipe_run checks"
  skip "native vs aarch64 checksum comparison"
else
  rc=$(status on_arm_litert "$ARM/edgepipe_run" "$CORRUPT" --library "$LIB_ARM")
  if [[ $rc == 2 ]]; then pass "qemu: edgepipe_run corrupted copy -> exit 2"
  else fail "qemu: edgepipe_run corrupted copy exited $rc (want 2): $(cat "$WORK/err")"; fi

  rc=$(status on_arm_litert "$ARM/edgepipe_run" "$MODEL" --library "$LIB_ARM" --runs $RUNS)
  cp "$WORK/out" "$WORK/run-aarch64.txt"
  cat "$WORK/run-aarch64.txt"
  if [[ $rc == 0 ]]; then pass "qemu: edgepipe_run default model on aarch64 libLiteRt.so"
  else fail "qemu: edgepipe_run exited $rc: $(cat "$WORK/err")"; fi

  rc=$(status "$X86/edgepipe_run" "$MODEL" --library "$LIB_X86" --runs $RUNS)
  cp "$WORK/out" "$WORK/run-x86_64.txt"
  cat "$WORK/run-x86_64.txt"
  if [[ $rc == 0 ]]; then pass "native: edgepipe_run default model on x86-64 libLiteRt.so"
  else fail "native: edgepipe_run exited $rc: $(cat "$WORK/err")"; fi

  # Same outputs (name, type, shape) and each checksum within
  # 1e-6 + 1e-4 * magnitude: the two CPUs run different XNNPACK kernels.
  if awk '
      $1 == "output" {
        key = $2 " " $3 " " $4 " " $5
        for (i = 6; i <= NF; i++) { split($i, kv, "="); val[key, kv[1]] = kv[2] }
        if (FILENAME == ARGV[1]) { keys[key] = 1; n1++ } else { n2++; if (!(key in keys)) bad = bad " missing:" key }
        if (FILENAME == ARGV[2]) for (f in fields) {
          a = val[key, f] + 0; b = ref[key, f] + 0
          d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); if ((b < 0 ? -b : b) > m) m = (b < 0 ? -b : b)
          if (d > 1e-6 + 1e-4 * m) bad = bad " " key " " f ": " b " vs " a
        }
        if (FILENAME == ARGV[1]) for (f in fields) ref[key, f] = val[key, f]
      }
      BEGIN { fields["sum"]; fields["abs"]; fields["wsum"] }
      END { if (n1 == 0 || n1 != n2) bad = bad " output count " n1 " vs " n2
            if (bad != "") { print "mismatch:" bad; exit 1 } }' \
      "$WORK/run-x86_64.txt" "$WORK/run-aarch64.txt"; then
    pass "checksums: aarch64 (qemu) == x86-64 (native) within float tolerance"
  else
    fail "checksums differ between aarch64 and x86-64"
  fi
fi

phase "done in $((SECONDS - START))s"
echo "cross-aarch64: $passed passed, $failed failed$( ((skipped)) && echo ", $skipped skipped")"
((failed == 0))
