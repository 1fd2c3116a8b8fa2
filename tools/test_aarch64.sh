#!/bin/sh
# tools/test_aarch64.sh [--build-only] [ROOT] [CTEST ARGS...] — builds
# embedkit for aarch64 and runs the test suite under qemu-user, on this
# x86-64 machine:
#   1. an arm64 sysroot of Debian 12's libraries in ROOT (default
#      /tmp/ek-arm64root) with mmdebstrap (only the packages' files, no
#      chroot);
#   2. the cross builds, with the project's own CMake flags (-Werror):
#      build-a64/ with Debian's gcc-aarch64-linux-gnu and build-a64-clang/
#      with clang --target=aarch64-linux-gnu (tools/aarch64.cmake), against
#      oneDNN 2.6 for arm64 from the sysroot: everything compiles and links;
#   3. unless --build-only (make check-aarch64, in CI), ctest in build-a64,
#      every aarch64 binary run by qemu-aarch64 (binfmt_misc is registered
#      when possible, so the tests' own exec of build-a64/ek works too).
# Needs root for apt-get and binfmt_misc and Debian's archive for the
# sysroot; without them it says so and exits 0.  The tests are slow under
# qemu (~7 minutes): give ctest -R to pick.
set -e
build_only=0
[ "$1" = "--build-only" ] && build_only=1 && shift
ROOT=${1:-/tmp/ek-arm64root}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
skip() { echo "aarch64: skipped ($1)"; exit 0; }
need=""
for p in gcc-aarch64-linux-gnu clang mmdebstrap qemu-user qemu-user-binfmt; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    [ "$(id -u)" = 0 ] || skip "missing:$need; install them as root"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null || skip "apt-get install$need failed"
fi
PKGS=libc6-dev,libgomp1,libgcc-12-dev,libomp-14-dev,libdnnl-dev,libutf8proc-dev,libcjson-dev,libcmocka-dev,libsqlite3-dev,libsodium-dev,libyaml-dev,libcurl4-openssl-dev,libmicrohttpd-dev,ocl-icd-opencl-dev,opencl-headers
if [ "$(cat "$ROOT/.ek-packages" 2>/dev/null)" != "$PKGS" ]; then
    rm -rf "$ROOT"
    mmdebstrap --quiet --arch=arm64 --variant=extract --include="$PKGS" \
        bookworm "$ROOT" http://deb.debian.org/debian || skip "no arm64 sysroot: mmdebstrap failed"
    echo "$PKGS" > "$ROOT/.ek-packages"
fi
export EK_ARM64_ROOT="$ROOT" QEMU_LD_PREFIX="$ROOT"
for cc in gcc clang; do
    dir=build-a64; [ $cc = clang ] && dir=build-a64-clang
    EK_CROSS_CC=$cc cmake -S . -B $dir -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=tools/aarch64.cmake >/dev/null
    cmake --build $dir -j "$(nproc)" >/dev/null
    echo "aarch64: $dir built with $cc (-Werror, linked against arm64 oneDNN $(ls "$ROOT"/usr/lib/aarch64-linux-gnu/libdnnl.so.*.* | sed 's/.*so\.//'))"
done
[ $build_only = 1 ] && exit 0
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
fi
cd build-a64 && ctest --output-on-failure --timeout 1800 "$@"
