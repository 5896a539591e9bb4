# cmake -DSOURCE_DIR=<repo> -P beast_confined.cmake
# Only harness/src/client/ may include Beast (or the client): the runner, the capacity search, the
# driver interface and the I/O-free core reach the network through driver/driver.hpp alone, so
# they build and are tested without Beast.
file(GLOB_RECURSE sources "${SOURCE_DIR}/harness/src/*.hpp" "${SOURCE_DIR}/harness/src/*.cpp")
set(failed FALSE)
foreach(file IN LISTS sources)
  file(RELATIVE_PATH name "${SOURCE_DIR}" "${file}")
  if(name MATCHES "^harness/src/client/" OR name STREQUAL "harness/src/main.cpp")
    continue()
  endif()
  file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](boost/beast|client/)")
  if(includes)
    message(SEND_ERROR "${name}: ${includes}: only harness/src/client/ may include Beast or the client")
    set(failed TRUE)
  endif()
endforeach()
if(NOT failed)
  list(LENGTH sources count)
  message(STATUS "${count} files: Beast stays in harness/src/client/")
endif()
