# aarch64 (arm64) with Debian's cross gcc and the target's libraries installed
# through multiarch (cross/sysroot.sh aarch64): headers in /usr/include and
# /usr/include/aarch64-linux-gnu, libraries in /usr/lib/aarch64-linux-gnu.
# No sysroot: the host's /usr is shared, and the library architecture keeps
# the x86-64 libraries out of every search.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(ES_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${ES_CROSS_TRIPLE}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${ES_CROSS_TRIPLE})

# Programs come from the host; libraries, headers and packages only from the
# target's multiarch directories.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_ROOT_PATH /)

# pkg-config reads the target's .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${ES_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
unset(ENV{PKG_CONFIG_SYSROOT_DIR})

# ctest runs target programs through qemu-user. Without -L: the multiarch
# loader (/lib/ld-linux-aarch64.so.1) and libraries are on the host's paths.
find_program(ES_QEMU qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${ES_QEMU})
