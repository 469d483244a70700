# Third-party libraries, all from Debian packages. Each is wrapped in an
# imported target named es::<name> so the rest of the build does not care how
# it was found.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# paho's CMake config names OpenSSL::SSL in its TLS targets.
find_package(OpenSSL REQUIRED)
find_package(eclipse-paho-mqtt-c CONFIG REQUIRED)
add_library(es::paho INTERFACE IMPORTED)
target_link_libraries(es::paho INTERFACE eclipse-paho-mqtt-c::paho-mqtt3as)

# SQLite: pkg-config keeps cross builds honest (sysroot-aware).
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
add_library(es::sqlite3 ALIAS PkgConfig::SQLITE3)

# cJSON's own CMake config hard-codes absolute paths; pkg-config does not.
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
add_library(es::cjson ALIAS PkgConfig::CJSON)

pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
add_library(es::inih ALIAS PkgConfig::INIH)

# civetweb's CMake config needs the civetweb binary package; find it directly.
find_path(CIVETWEB_INCLUDE_DIR civetweb.h REQUIRED)
find_library(CIVETWEB_LIBRARY civetweb REQUIRED)
add_library(es::civetweb UNKNOWN IMPORTED)
set_target_properties(es::civetweb PROPERTIES
  IMPORTED_LOCATION "${CIVETWEB_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CIVETWEB_INCLUDE_DIR}")

# libcrypt (libxcrypt): password hashes for HTTP authentication (common/auth.c).
pkg_check_modules(LIBCRYPT REQUIRED IMPORTED_TARGET libcrypt)
add_library(es::crypt ALIAS PkgConfig::LIBCRYPT)

# libcurl: the HTTP client (common/httpc.c: the CLI, fleet-state) and the benchmarks.
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
add_library(es::curl ALIAS PkgConfig::CURL)

if(ES_BUILD_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
  add_library(es::cmocka ALIAS PkgConfig::CMOCKA)
endif()

# rabbitmq-c (librabbitmq): the AMQP 0-9-1 client of the consumers
# (common/amqp.c). 0.11 installs <amqp.h>; later versions <rabbitmq-c/amqp.h>.
pkg_check_modules(RABBITMQ REQUIRED IMPORTED_TARGET librabbitmq)
add_library(es::rabbitmq ALIAS PkgConfig::RABBITMQ)

# zlib and libzstd: the uplink's batch compression (common/batch.c, the one
# file that includes them). pkg-config, so cross builds find the sysroot's.
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
add_library(es::zlib ALIAS PkgConfig::ZLIB)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
add_library(es::zstd ALIAS PkgConfig::ZSTD)
