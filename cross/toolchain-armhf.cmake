# armhf (32-bit ARMv7, hard float) with Debian's cross gcc and a sysroot made
# from Debian's armhf packages by cross/sysroot.sh armhf (out/sysroot-armhf,
# or ES_SYSROOT given to cmake or in the environment).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(ES_CROSS_TRIPLE arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${ES_CROSS_TRIPLE}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${ES_CROSS_TRIPLE})

if(NOT ES_SYSROOT)
  if(DEFINED ENV{ES_SYSROOT})
    set(ES_SYSROOT "$ENV{ES_SYSROOT}")
  else()
    get_filename_component(ES_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../out/sysroot-armhf" ABSOLUTE)
  endif()
endif()
if(NOT EXISTS "${ES_SYSROOT}/lib/ld-linux-armhf.so.3")
  message(FATAL_ERROR "no armhf sysroot in ${ES_SYSROOT}: run cross/sysroot.sh armhf")
endif()
# try_compile projects re-read this file: hand them the sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ES_SYSROOT)
set(CMAKE_SYSROOT "${ES_SYSROOT}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads the sysroot's .pc files and prefixes their paths with it.
set(ENV{PKG_CONFIG_LIBDIR}
  "${ES_SYSROOT}/usr/lib/${ES_CROSS_TRIPLE}/pkgconfig:${ES_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${ES_SYSROOT}")

# ctest runs target programs through qemu-user, with the sysroot's loader
# and libraries.
find_program(ES_QEMU qemu-arm REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${ES_QEMU} -L ${ES_SYSROOT})
