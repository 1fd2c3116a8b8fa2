#!/bin/sh
# tools/check_aarch64.sh BUILD — compiles every library and CLI source for
# aarch64 (gcc and clang cross compilers, the project's warning flags with
# -Werror), so the portable fallback stays buildable on ARM: the x86 SIMD
# kernels are guarded by __x86_64__ and the scalar / C paths serve there.
# Compile only: arm64 builds of oneDNN and the other libraries are not
# installed here, so nothing is linked or run.  Skips (exit 0) with a
# message when aarch64-linux-gnu-gcc is missing
# (apt-get install gcc-aarch64-linux-gnu).
set -e
BUILD=${1:-build}
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    echo "check-aarch64: skipped (no aarch64-linux-gnu-gcc; apt-get install gcc-aarch64-linux-gnu)"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Third-party headers are architecture-independent here; the cross
# toolchain's own C library headers come first.
FLAGS="-std=c11 -O2 -fopenmp -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unknown-pragmas
       -ffp-contract=off -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Isrc
       -idirafter /usr/include -idirafter /usr/include/x86_64-linux-gnu"
n=0
for f in src/*/*.c "$BUILD"/gen/gpu_kernels.c; do
    [ -f "$f" ] || continue
    o="$out/$(echo "$f" | tr / _).o"
    aarch64-linux-gnu-gcc $FLAGS -c "$f" -o "$o"
    if command -v clang >/dev/null 2>&1; then
        clang --target=aarch64-linux-gnu -isystem /usr/aarch64-linux-gnu/include $FLAGS -c "$f" -o "$o"
    fi
    n=$((n + 1))
done
echo "check-aarch64: ok ($n files compile for aarch64 with gcc$(command -v clang >/dev/null 2>&1 && echo ' and clang'))"
