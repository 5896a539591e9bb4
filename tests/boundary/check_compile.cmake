# cmake -DBUILD_DIR=<build> -DTARGET=<probe target> -DHEADER=<as included> -DEXPECT=refused|compiles
#       -P check_compile.cmake
# Builds one probe of tests/boundary/CMakeLists.txt. `refused` passes only when the compiler stops
# because HEADER is not on the probe's include path ("<HEADER>: No such file or directory"), so an
# unrelated error cannot pass for a boundary; `compiles` passes only when the build succeeds.
foreach(var BUILD_DIR TARGET HEADER EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_compile.cmake needs -D${var}=…")
  endif()
endforeach()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(REGEX REPLACE "([][+.*?()^$|\\\\])" "\\\\\\1" header_re "${HEADER}")
if(EXPECT STREQUAL "refused")
  if(rc EQUAL 0)
    message(FATAL_ERROR "${TARGET} compiled: \"${HEADER}\" is on its include path, but it is internal to "
                        "another component.\n${out}")
  elseif(NOT out MATCHES "${header_re}: No such file or directory")
    message(FATAL_ERROR "${TARGET} failed, but not for want of \"${HEADER}\":\n${out}")
  endif()
  message(STATUS "${TARGET}: \"${HEADER}\" refused (No such file or directory), as it should be")
elseif(EXPECT STREQUAL "compiles")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TARGET} did not compile with \"${HEADER}\":\n${out}")
  endif()
  message(STATUS "${TARGET}: \"${HEADER}\" compiles")
else()
  message(FATAL_ERROR "EXPECT must be refused or compiles, not ${EXPECT}")
endif()
