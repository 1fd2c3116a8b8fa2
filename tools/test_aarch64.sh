#!/bin/sh
# tools/test_aarch64.sh [ROOT] [CTEST ARGS...] — builds embedkit for aarch64
# and runs the test suite under qemu-user, on this x86-64 machine:
#   1. an arm64 sysroot of Debian 12's libraries in ROOT (default
#      /tmp/ek-arm64root) with mmdebstrap (only the packages' files, no
#      chroot);
#   2. the cross build in build-a64/ (tools/aarch64.cmake: Debian's
#      gcc-aarch64-linux-gnu, oneDNN 2.6 for arm64 from the sysroot);
#   3. ctest, every aarch64 binary run by qemu-aarch64 (binfmt_misc is
#      registered when possible, so the tests' own exec of build-a64/ek
#      works too).
# Needs root for apt-get and binfmt_misc; slow (qemu): give ctest -R to pick.
set -e
ROOT=${1:-/tmp/ek-arm64root}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
need=""
for p in gcc-aarch64-linux-gnu mmdebstrap qemu-user qemu-user-binfmt; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
if [ ! -f "$ROOT/usr/include/oneapi/dnnl/dnnl.h" ]; then
    mmdebstrap --arch=arm64 --variant=extract \
        --include=libc6-dev,libgomp1,libgcc-12-dev,libdnnl-dev,libutf8proc-dev,libcjson-dev,libcmocka-dev,libsqlite3-dev,libsodium-dev,libyaml-dev,libcurl4-openssl-dev,libmicrohttpd-dev,ocl-icd-opencl-dev,opencl-headers \
        bookworm "$ROOT" http://deb.debian.org/debian
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
fi
export EK_ARM64_ROOT="$ROOT" QEMU_LD_PREFIX="$ROOT"
cmake -S . -B build-a64 -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=tools/aarch64.cmake
cmake --build build-a64 -j "$(nproc)"
cd build-a64 && ctest --output-on-failure --timeout 1800 "$@"
