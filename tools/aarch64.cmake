# tools/aarch64.cmake — CMake toolchain for the aarch64 cross build of
# tools/test_aarch64.sh: Debian's gcc-aarch64-linux-gnu against an arm64
# sysroot (EK_ARM64_ROOT, made by mmdebstrap), tests run under qemu-aarch64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
# EK_CROSS_CC=clang: clang for aarch64 (the -Werror check with the second
# compiler); the default is Debian's cross gcc.
if("$ENV{EK_CROSS_CC}" STREQUAL "clang")
  set(CMAKE_C_COMPILER clang)
  set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
else()
  set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
endif()
if(NOT DEFINED ENV{EK_ARM64_ROOT})
  message(FATAL_ERROR "set EK_ARM64_ROOT to the arm64 sysroot (see tools/test_aarch64.sh)")
endif()
set(CMAKE_SYSROOT $ENV{EK_ARM64_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L $ENV{EK_ARM64_ROOT})
