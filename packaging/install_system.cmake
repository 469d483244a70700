# Runs at install time (cmake --install, make install, cpack), included by
# the install(CODE) of es_install_system() with ES_PKG_SRC, ES_PKG_TMP,
# ES_UNITDIR, ES_BINDIR, ES_PROGRAM, ES_UNIT and ES_CONFIG set. By then
# CMAKE_INSTALL_PREFIX is the final prefix (cpack's /usr, or --prefix), and
# file(INSTALL) puts $ENV{DESTDIR} in front of each destination.

# sysconfdir as GNUInstallDirs defines it: /etc for the prefixes / and /usr,
# /etc/opt/... for /opt/..., else <prefix>/etc.
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "" OR prefix STREQUAL "/usr")
  set(etc /etc)
elseif(prefix MATCHES "^/opt/")
  set(etc /etc${prefix})
else()
  set(etc ${prefix}/etc)
endif()
set(unitdir "${ES_UNITDIR}")
if(unitdir STREQUAL "" AND prefix STREQUAL "/usr")
  set(unitdir /lib/systemd/system)
elseif(unitdir STREQUAL "")
  set(unitdir ${prefix}/lib/systemd/system)
endif()
if(IS_ABSOLUTE "${ES_BINDIR}")
  set(ES_FULL_BINDIR ${ES_BINDIR})
else()
  set(ES_FULL_BINDIR ${prefix}/${ES_BINDIR})
endif()
set(ES_FULL_SYSCONFDIR ${etc})

# The unit names the program and its config by their installed paths.
configure_file(${ES_PKG_SRC}/systemd/${ES_UNIT}.in ${ES_PKG_TMP}/${ES_UNIT} @ONLY)
file(INSTALL DESTINATION ${unitdir} TYPE FILE FILES ${ES_PKG_TMP}/${ES_UNIT})

# The default config; a config already in place on this machine (no DESTDIR:
# a plain `make install` over an earlier one) is the admin's and is kept.
set(conf_dir ${etc}/edgespool)
if("$ENV{DESTDIR}" STREQUAL "" AND EXISTS ${conf_dir}/${ES_CONFIG})
  message(STATUS "Keeping: ${conf_dir}/${ES_CONFIG} (the default is ${ES_PKG_SRC}/etc/${ES_CONFIG})")
else()
  file(INSTALL DESTINATION ${conf_dir} TYPE FILE FILES ${ES_PKG_SRC}/etc/${ES_CONFIG})
endif()
