# cmake -DSOURCE_DIR=<repo> -P beast_confined.cmake
# Beast stays in two folders of harness/src: client/ (the Socket.IO client, the driver main hands
# the runner) and exporter/ (the HTTP listener of --metrics-port, added deliberately: a server, not
# the client, with nothing of the load in it but a render function). The runner, the capacity
# search, the driver interface and the I/O-free core reach the network through driver/driver.hpp
# alone, so they build and are tested without Beast; only main.cpp includes client/ or exporter/.
file(GLOB_RECURSE sources "${SOURCE_DIR}/harness/src/*.hpp" "${SOURCE_DIR}/harness/src/*.cpp")
set(failed FALSE)
foreach(file IN LISTS sources)
  file(RELATIVE_PATH name "${SOURCE_DIR}" "${file}")
  if(name MATCHES "^harness/src/client/" OR name STREQUAL "harness/src/main.cpp")
    continue()
  endif()
  if(name MATCHES "^harness/src/exporter/")
    set(pattern "^[ \t]*#[ \t]*include[ \t]*[<\"](client/)")
  else()
    set(pattern "^[ \t]*#[ \t]*include[ \t]*[<\"](boost/beast|client/|exporter/)")
  endif()
  file(STRINGS "${file}" includes REGEX "${pattern}")
  if(includes)
    message(SEND_ERROR "${name}: ${includes}: only harness/src/client/ and exporter/ may include Beast, "
                       "only main.cpp the client or the exporter")
    set(failed TRUE)
  endif()
endforeach()
if(NOT failed)
  list(LENGTH sources count)
  message(STATUS "${count} files: Beast stays in harness/src/client/ and exporter/")
endif()
