# sluice_test(NAME SOURCES... LABEL unit|integration|e2e|fault [LIBS ...] [FIXTURES ...])
# One test executable per call; integration tests name the fixtures they need (kafka, redis, pg),
# which tests/CMakeLists.txt sets up with the project's own scripts.
function(sluice_test name)
  cmake_parse_arguments(T "" "LABEL" "SOURCES;LIBS;FIXTURES;ENV" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE sluice_testlib ${T_LIBS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT 300
    ENVIRONMENT "SLUICE_SOURCE_DIR=${CMAKE_SOURCE_DIR};SLUICE_BINARY_DIR=${CMAKE_BINARY_DIR};${T_ENV}")
  if(T_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
endfunction()
