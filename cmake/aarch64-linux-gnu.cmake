# Cross build for 64-bit ARM Linux with Debian's gcc-aarch64-linux-gnu.
# utf8proc, jansson and protobuf-c come from QB_ARM64_SYSROOT (Debian's
# arm64 packages unpacked by scripts/install-deps.sh --arm64) and are linked
# statically (CMakeLists.txt asks for the .a files), so build-arm64/qbert
# needs only libc on the board; libqbert.so is not built.  serve is left out
# (src/serve/server_none.c says why).
set(CMAKE_SYSTEM_NAME Linux)
set(QB_SERVE OFF CACHE BOOL "")
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT QB_ARM64_SYSROOT)
  set(QB_ARM64_SYSROOT "${CMAKE_BINARY_DIR}/sysroot")
endif()
list(APPEND CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu "${QB_ARM64_SYSROOT}")
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# ctest runs the cross-built tests through qemu (make test-arm64 picks the CPU).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
