# Project-wide compile settings and the helpers every library, service and test uses.

add_library(dp_options INTERFACE)
target_compile_options(dp_options INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers)
# Asio: no deprecated interfaces; Beast: no separate-compilation surprises.
target_compile_definitions(dp_options INTERFACE BOOST_ASIO_NO_DEPRECATED BOOST_ALLOW_DEPRECATED_HEADERS
                                                BOOST_BIND_GLOBAL_PLACEHOLDERS)
if(DP_SANITIZE)
  target_compile_options(dp_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                              -fno-sanitize-recover=undefined)
  # g++ 12's flow analysis sees through the sanitizers' instrumentation and reports coroutine
  # frames and moved-from results that are fine (GCC bug 105562 and kin): off in this tree.
  target_compile_options(dp_options INTERFACE -Wno-maybe-uninitialized -Wno-mismatched-new-delete)
  target_link_options(dp_options INTERFACE -fsanitize=address,undefined)
elseif(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  # g++ 12 at -O3 reports impossible std::string copies and coroutine-frame accesses (GCC bugs
  # 105329, 105651 and kin) through its flow-based warnings: still printed, no longer fatal.
  # Every other warning stays an error.
  target_compile_options(
    dp_options INTERFACE -Wno-error=restrict -Wno-error=stringop-overflow
                         -Wno-error=stringop-overread -Wno-error=array-bounds
                         -Wno-error=maybe-uninitialized -Wno-error=mismatched-new-delete
                         -Wno-error=free-nonheap-object -Wno-error=dangling-pointer
                         -Wno-error=use-after-free)
endif()
if(DP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DP_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  # Coverage for libFuzzer in every library the targets link; the targets add -fsanitize=fuzzer.
  target_compile_options(dp_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                              -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(dp_options INTERFACE -fsanitize=address,undefined)
endif()
target_compile_definitions(dp_options INTERFACE DP_VERSION="${PROJECT_VERSION}")

# Precompiled header shared by the Boost-heavy targets (Asio, Beast, JSON). Reused, not rebuilt per target.
set(DP_PCH_HEADER ${PROJECT_SOURCE_DIR}/cmake/pch_boost.hpp)

# dp_add_library(<name> DEPS <targets...> [BOOST_PCH])
#   libs/<name>/{include,src,test}: sources are src/*.cpp, tests are test/*_test.cpp (unit label)
#   and test/*_itest.cpp (integration label: may start redis-server, s3rver, git).
#   Creates target dp_<name> and alias dp::<name>.
function(dp_add_library name)
  cmake_parse_arguments(ARG "BOOST_PCH" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
  if(NOT srcs)
    message(WARNING "libs/${name} has no sources yet; skipped")
    return()
  endif()
  add_library(dp_${name} STATIC ${srcs})
  add_library(dp::${name} ALIAS dp_${name})
  target_include_directories(dp_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                        PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(dp_${name} PUBLIC dp_options ${ARG_DEPS})
  if(ARG_BOOST_PCH)
    dp_use_boost_pch(dp_${name})
  endif()
  if(DP_BUILD_TESTS)
    file(GLOB unit_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test/*_test.cpp)
    file(GLOB integration_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test/*_itest.cpp)
    if(unit_tests)
      dp_add_test(${name}_unit LABEL unit SOURCES ${unit_tests} DEPS dp_${name} ${ARG_TEST_DEPS}
)
    endif()
    if(integration_tests)
      dp_add_test(${name}_integration LABEL integration SOURCES ${integration_tests}
                  DEPS dp_${name} dp_test_harness ${ARG_TEST_DEPS})
    endif()
  endif()
endfunction()

# One precompiled header target; others reuse it so it is compiled once per build tree. gcc uses a
# .gch only when the macros match, so every user also links the same Boost/fmt targets (whose
# usage requirements define macros); a mismatch falls back to parsing the headers, with a warning.
function(dp_use_boost_pch target)
  if(NOT TARGET dp_pch_boost)
    add_library(dp_pch_boost_deps INTERFACE)
    target_link_libraries(dp_pch_boost_deps INTERFACE dp_options Boost::json Boost::url fmt::fmt
                                                      Threads::Threads)
    add_library(dp_pch_boost STATIC ${PROJECT_SOURCE_DIR}/cmake/pch_boost.cpp)
    target_link_libraries(dp_pch_boost PUBLIC dp_pch_boost_deps)
    target_precompile_headers(dp_pch_boost PRIVATE ${DP_PCH_HEADER})
  endif()
  target_link_libraries(${target} PUBLIC dp_pch_boost_deps)
  target_compile_options(${target} PRIVATE -Wno-error=invalid-pch)
  target_precompile_headers(${target} REUSE_FROM dp_pch_boost)
endfunction()

# dp_add_test(<name> LABEL unit|integration|e2e SOURCES ... DEPS ...)
#   A GoogleTest executable; each TEST becomes one ctest test carrying the label.
function(dp_add_test name)
  cmake_parse_arguments(ARG "" "LABEL" "SOURCES;DEPS" ${ARGN})
  add_executable(${name}_test ${ARG_SOURCES})
  target_link_libraries(${name}_test PRIVATE dp_options ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  include(GoogleTest)
  # DISCOVERY_TIMEOUT is an argument of its own: placed after PROPERTIES it would end that list.
  gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS ${ARG_LABEL} ENVIRONMENT "DP_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# dp_add_service(<name> SOURCES ... DEPS ...): an executable in services/<name>.
function(dp_add_service name)
  cmake_parse_arguments(ARG "BOOST_PCH" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE dp_options ${ARG_DEPS})
  if(ARG_BOOST_PCH)
    dp_use_boost_pch(${name})
  endif()
endfunction()

# The ctest fixture docker_engine (tests/harness/CMakeLists.txt) runs a dockerd of its own in this
# directory; short, since it holds the daemon's unix socket, and one per build tree.
string(SHA1 dp_tree_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${dp_tree_hash}" 0 12 dp_tree_hash)
set(DP_DOCKER_ENGINE_DIR "/tmp/dp-docker-${dp_tree_hash}")
