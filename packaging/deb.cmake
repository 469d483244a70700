# The .deb packages (CPack, DEB generator): one per component.
#
#   edgespool-agent        edge-agent, /etc/edgespool/agent.ini, edgespool-agent.service
#   edgespool-bridge       cloud-bridge, /etc/edgespool/bridge.ini, edgespool-bridge.service
#   edgespool-fleet-state  fleet-state, /etc/edgespool/fleet-state.ini,
#                          edgespool-fleet-state.service
#   edgespool-tools        edgespool (the command-line tool), firmware-host
#
# To add a package: install its program with COMPONENT <comp>, call
# es_install_system(), es_install_man() and es_install_docs() for it in
# CMakeLists.txt, set ES_DEB_DEPENDS_<comp> below, add a row here with
# es_deb_package(<comp> <name> ...) and the component to
# CPACK_COMPONENTS_ALL; a daemon also goes in ES_DEB_DAEMONS (its
# maintainer scripts share the user and the state folder with the others).
# Its Depends must cover what dpkg-shlibdeps finds in it, and its files are
# listed in tests/package (test_deb.py, test_install.py, which check them).

include(${CMAKE_CURRENT_LIST_DIR}/deb_arch.cmake)
es_deb_arch(es_arch_guess)
set(ES_DEB_ARCH "${es_arch_guess}" CACHE STRING "Debian architecture of the packages")

# Depends, per package: kept by hand so that cross builds (whose sysroot
# dpkg-shlibdeps cannot read) get the same list. Debian 12 names, the
# versions dpkg-shlibdeps gives for the native build; the package test
# (tests/package) fails when dpkg-shlibdeps names anything missing here.
# libsqlite3-0 is raised above what dpkg-shlibdeps finds (3.20.0): the
# journal's readers use SQLite's JSON functions, built in since 3.38.0
# (decision 63).
set(ES_DEB_LIBS_DAEMON "libc6 (>= 2.34), libcivetweb1 (>= 1.15), libcjson1 (>= 1.7.13), \
libcrypt1 (>= 1:4.1.0), libinih1 (>= 40), libpaho-mqtt1.3 (>= 1.3.0), \
libsqlite3-0 (>= 3.38.0), libssl3 (>= 3.0.0)")
# zlib1g, libzstd1: batches (common/batch.c), read by the consumers (fleet-state,
# edgespool tail) and sent by the bridge (cloud.format batch) and the agent
# (mqtt.format batch).
set(ES_DEB_LIBS_BATCH "libzstd1 (>= 1.5.2), zlib1g (>= 1:1.2.0)")
set(ES_DEB_DEPENDS_agent "${ES_DEB_LIBS_DAEMON}, ${ES_DEB_LIBS_BATCH}, adduser")
set(ES_DEB_DEPENDS_bridge "${ES_DEB_LIBS_DAEMON}, ${ES_DEB_LIBS_BATCH}, adduser")
set(ES_DEB_DEPENDS_fleet "${ES_DEB_LIBS_DAEMON}, libcurl4 (>= 7.16.2), \
librabbitmq4 (>= 0.10.0), ${ES_DEB_LIBS_BATCH}, adduser")
set(ES_DEB_DEPENDS_tools "libc6 (>= 2.34), libcjson1 (>= 1.7.13), libcrypt1 (>= 1:4.1.0), \
libcurl4 (>= 7.16.2), libinih1 (>= 40), libpaho-mqtt1.3 (>= 1.3.0), \
librabbitmq4 (>= 0.10.0), libsqlite3-0 (>= 3.38.0), libssl3 (>= 3.0.0), ${ES_DEB_LIBS_BATCH}")

# The daemon packages: they share the edgespool user and /var/lib/edgespool,
# which a purge removes only when none of the others is left (postrm.in).
set(ES_DEB_DAEMONS edgespool-agent edgespool-bridge edgespool-fleet-state)

# es_deb_package(COMPONENT NAME SECTION SUMMARY DESCRIPTION [UNIT DB CONFIG])
# UNIT, DB, CONFIG: a daemon's unit, its SQLite file in /var/lib/edgespool,
# and its config in /etc/edgespool (a conffile). The maintainer scripts get
# the other daemon packages (ES_DEB_DAEMONS but NAME) as ES_OTHER_PKGS.
function(es_deb_package comp name section summary description)
  string(TOUPPER ${comp} C)
  set(CPACK_DEBIAN_${C}_PACKAGE_NAME ${name} PARENT_SCOPE)
  set(CPACK_DEBIAN_${C}_PACKAGE_SECTION ${section} PARENT_SCOPE)
  set(CPACK_DEBIAN_${C}_PACKAGE_DEPENDS "${ES_DEB_DEPENDS_${comp}}" PARENT_SCOPE)
  set(CPACK_COMPONENT_${C}_DESCRIPTION "${summary}\n${description}" PARENT_SCOPE)
  if(ARGC GREATER 5)
    set(dir ${CMAKE_CURRENT_BINARY_DIR}/deb/${comp})
    set(ES_PKG ${name})
    set(ES_UNIT ${ARGV5})
    set(ES_DB ${ARGV6})
    set(others ${ES_DEB_DAEMONS})
    list(REMOVE_ITEM others ${name})
    list(LENGTH ES_DEB_DAEMONS n_all)
    list(LENGTH others n_others)
    math(EXPR n_all "${n_all} - 1")
    if(NOT n_others EQUAL n_all)
      message(FATAL_ERROR "${name} is not in ES_DEB_DAEMONS (${ES_DEB_DAEMONS})")
    endif()
    string(REPLACE ";" " " ES_OTHER_PKGS "${others}")
    foreach(script postinst prerm postrm)
      configure_file(debian/${script}.in ${dir}/${script} @ONLY
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                         WORLD_READ WORLD_EXECUTE)
    endforeach()
    # Files under /etc are not conffiles unless listed (debhelper would).
    file(WRITE ${dir}/conffiles "/etc/edgespool/${ARGV7}\n")
    set(CPACK_DEBIAN_${C}_PACKAGE_CONTROL_EXTRA
      "${dir}/conffiles;${dir}/postinst;${dir}/prerm;${dir}/postrm" PARENT_SCOPE)
  endif()
endfunction()

es_deb_package(agent edgespool-agent net
  "edgespool edge agent: journal-first event publisher for gateways"
  "The gateway daemon of edgespool. It journals every event handed to it (HTTP,
serial or socket device links) in SQLite before answering, publishes it as a
CloudEvent over MQTT QoS 1, and keeps it until the broker acknowledges it, so
a broker restart, a lost uplink or a power cut loses nothing. Serves a
dashboard, a REST API and Prometheus metrics. Runs as edgespool-agent.service."
  edgespool-agent.service agent.db agent.ini)
es_deb_package(bridge edgespool-bridge net
  "edgespool cloud bridge: forwards a site's events to the cloud broker"
  "Subscribes to a site's MQTT broker with a persistent session, journals each
event in a SQLite inbox (unique by id), forwards it to the cloud broker in
per-node order, and asks the agents to re-send what was lost on the way. Runs
as edgespool-bridge.service."
  edgespool-bridge.service bridge.db bridge.ini)
es_deb_package(fleet edgespool-fleet-state net
  "edgespool fleet-state: a projection of every device, fed by the events"
  "A cloud consumer of edgespool's events. It takes them from a RabbitMQ
quorum queue (AMQP 0-9-1, acknowledged after they are committed) or an MQTT
broker, applies each event id once to a SQLite projection of every device
across all sites, serves it as JSON with Prometheus metrics, fetches the
holes in a node's sequence from the node, and rebuilds the projection from
its own event log. Runs as edgespool-fleet-state.service."
  edgespool-fleet-state.service fleet-state.db fleet-state.ini)
es_deb_package(tools edgespool-tools utils
  "edgespool tools: command-line client and simulated device fleet"
  "edgespool: emit events, look into journals, subscribe as a gap-tracking
consumer, follow events by type from AMQP or MQTT (tail), and manage HTTP
users. firmware-host: the device firmware's portable core built for the host,
a simulated fleet of sensors speaking the serial link protocol over a pty or
socket, for demos, tests and load.")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME edgespool)
set(CPACK_PACKAGE_VENDOR "edgespool")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${ES_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL agent bridge fleet tools)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${ES_DEB_ARCH})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "mosquitto, edgespool-tools")
set(CPACK_DEBIAN_BRIDGE_PACKAGE_SUGGESTS "mosquitto, edgespool-tools")
set(CPACK_DEBIAN_FLEET_PACKAGE_SUGGESTS "rabbitmq-server, edgespool-tools")
# Packages install under /usr with /etc and /lib/systemd/system beside it:
# absolute destinations, so cpack installs with DESTDIR (see install_system.cmake).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# (with CPACK_SET_DESTDIR, cpack installs with CPACK_INSTALL_PREFIX)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
