# pkg_deb_arch: the packages' architecture follows the compiler's target,
# as a cross toolchain file sets it (cmake -P tests/package/deb_arch_test.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/../../packaging/deb_arch.cmake)

function(expect processor compiler libarch want)
  set(CMAKE_SYSTEM_PROCESSOR ${processor})
  set(CMAKE_C_COMPILER ${compiler})
  set(CMAKE_C_LIBRARY_ARCHITECTURE ${libarch})
  es_deb_arch(got)
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "${processor} ${compiler} ${libarch}: ${got}, not ${want}")
  endif()
  message(STATUS "${processor} (${compiler}): ${got}")
endfunction()

expect(x86_64 /usr/bin/cc x86_64-linux-gnu amd64)
expect(AMD64 /usr/bin/cc "" amd64)
expect(aarch64 /usr/bin/aarch64-linux-gnu-gcc aarch64-linux-gnu arm64)
expect(arm64 /usr/bin/cc "" arm64)
expect(arm /usr/bin/arm-linux-gnueabihf-gcc arm-linux-gnueabihf armhf)
expect(armv7l /usr/bin/cc "" armhf)
expect(armv7-a arm-linux-gnueabihf-gcc "" armhf)
expect(arm /usr/bin/arm-linux-gnueabi-gcc arm-linux-gnueabi armel)
expect(i686 /usr/bin/cc i386-linux-gnu i386)
