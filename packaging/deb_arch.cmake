# es_deb_arch(OUT): Debian's name for the architecture the compiler targets.
# Separate from deb.cmake so tests/package/deb_arch_test.cmake can run it
# with a cross toolchain's values (cmake -P).
# From the compiler's target (a cross toolchain sets CMAKE_SYSTEM_PROCESSOR),
# never from the build host (dpkg --print-architecture).
function(es_deb_arch out)
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" p)
  if(p MATCHES "^(x86_64|amd64)$")
    set(a amd64)
  elseif(p MATCHES "^(aarch64|arm64)")
    set(a arm64)
  elseif(p MATCHES "^arm")
    # armhf (arm-linux-gnueabihf, hard float) unless the toolchain is the
    # soft-float arm-linux-gnueabi one (armel).
    if(CMAKE_C_LIBRARY_ARCHITECTURE MATCHES "gnueabi$" OR CMAKE_C_COMPILER MATCHES "gnueabi-[^/]*$")
      set(a armel)
    else()
      set(a armhf)
    endif()
  elseif(p MATCHES "^i[3-6]86$")
    set(a i386)
  else()
    message(FATAL_ERROR "no Debian architecture known for CMAKE_SYSTEM_PROCESSOR "
      "'${CMAKE_SYSTEM_PROCESSOR}': set ES_DEB_ARCH")
  endif()
  set(${out} ${a} PARENT_SCOPE)
endfunction()

