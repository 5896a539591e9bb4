# Every third-party dependency is found here, once. All come from Debian packages installed by
# scripts/setup.sh; Boost is the versioned 1.81 set (the unversioned libboost-*-dev are 1.74).
find_package(Boost 1.81 EXACT REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(fmt 9 REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB 1.2.11 REQUIRED)  # compression=zlib
find_package(OpenSSL REQUIRED)  # tokens (HMAC), the WebSocket handshake (SHA-1), rediss:// and https:// (TLS)

# Boost.Asio/Beast compiled once per binary or plugin (docs/development.md, "Habits the code comments
# point to"): every TU that links phasekit::asio agrees on the separate-compilation defines.
# Two objects, so a plugin that uses only Asio does not pull Beast in.
add_library(phasekit_asio STATIC "${PROJECT_SOURCE_DIR}/core/src/asio_src.cpp" "${PROJECT_SOURCE_DIR}/core/src/beast_src.cpp")
add_library(phasekit::asio ALIAS phasekit_asio)
target_compile_definitions(phasekit_asio PUBLIC
  BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
target_link_libraries(phasekit_asio PUBLIC Boost::headers Threads::Threads PRIVATE phasekit::options)
set_target_properties(phasekit_asio PROPERTIES POSITION_INDEPENDENT_CODE ON)

# hiredis 0.14 (Debian libhiredis-dev) is used only as a RESP codec by core/src/redis; Asio owns the I/O.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis>=0.14)
# SQLite 3.40 (Debian libsqlite3-dev): store=sqlite, one file that survives restarts.
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3>=3.37)
# libpq 15 (Debian libpq-dev): store=postgres.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq>=13)
