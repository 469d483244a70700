# One place for compiler flags. Every target of ours calls es_target_defaults().
set(ES_WARNINGS -Wall -Wextra -Wshadow -Wconversion -Wsign-conversion
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2
    -Wundef -Wvla -Wno-unused-parameter)

# Hardening, as Debian builds its packages (dpkg-buildflags): stack
# protector, stack clash protection, fortified libc calls (optimised builds
# only: glibc warns without optimisation), full RELRO with immediate binding.
# Off under the sanitizers, which do their own checking.
option(ES_HARDEN "Build with Debian's hardening flags" ON)
set(ES_HARDEN_COMPILE -fstack-protector-strong -fstack-clash-protection
    $<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2>)
set(ES_HARDEN_LINK -Wl,-z,relro -Wl,-z,now)

function(es_target_defaults target)
  target_compile_options(${target} PRIVATE ${ES_WARNINGS})
  # _GNU_SOURCE: getrandom, eventfd, signalfd, pipe2 are Linux interfaces we use on purpose.
  target_compile_definitions(${target} PRIVATE _GNU_SOURCE)
  # 64-bit off_t and time_t on 32-bit targets (armhf): dates past 2038, and
  # readdir on a 64-bit kernel's directories (no-ops on 64-bit targets).
  target_compile_definitions(${target} PRIVATE _FILE_OFFSET_BITS=64 _TIME_BITS=64)
  if(ES_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(ES_HARDEN AND NOT ES_SANITIZE)
    target_compile_options(${target} PRIVATE ${ES_HARDEN_COMPILE})
    target_link_options(${target} PRIVATE ${ES_HARDEN_LINK})
  endif()
  if(ES_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
