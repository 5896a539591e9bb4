# phasekit::options carries the language level and sanitizer flags; phasekit::warnings the warning set.
# Every phasekit target links both (PRIVATE); nothing edits CMAKE_CXX_FLAGS.
add_library(phasekit_options INTERFACE)
add_library(phasekit::options ALIAS phasekit_options)
target_compile_features(phasekit_options INTERFACE cxx_std_20)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

if(PHASEKIT_SANITIZE)
  # GCC leaves float-cast-overflow (a double out of an integer's range converted to it) out of
  # -fsanitize=undefined; it is undefined behaviour all the same, so it is trapped too.
  target_compile_options(phasekit_options INTERFACE -fsanitize=address,undefined,float-cast-overflow
                                                    -fno-omit-frame-pointer
                                                    -fno-sanitize-recover=undefined,float-cast-overflow)
  target_link_options(phasekit_options INTERFACE -fsanitize=address,undefined,float-cast-overflow)
  target_compile_definitions(phasekit_options INTERFACE PHASEKIT_SANITIZE=1)
endif()

if(PHASEKIT_FUZZ)
  # The libraries a fuzzer links must report coverage too, or libFuzzer mutates blind: only the
  # fuzz target itself gets -fsanitize=fuzzer (tests/fuzz), everything else this.
  target_compile_options(phasekit_options INTERFACE -fsanitize=fuzzer-no-link)
endif()

add_library(phasekit_warnings INTERFACE)
add_library(phasekit::warnings ALIAS phasekit_warnings)
target_compile_options(phasekit_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused
  -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2
  $<$<BOOL:${PHASEKIT_WERROR}>:-Werror>)
