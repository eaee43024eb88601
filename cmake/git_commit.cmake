# Writes OUT (a C file defining qb_cli_git_commit) from the source tree SRC at
# build time, not configure time: a build after new commits must not report
# the commit it was configured at.  "-dirty" marks tracked files that differ
# from that commit.  OUT is rewritten only when its text changes, so an
# unchanged tree recompiles nothing.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit "unknown")
else()
  execute_process(COMMAND git diff --quiet HEAD -- WORKING_DIRECTORY ${SRC} RESULT_VARIABLE changed
                  OUTPUT_QUIET ERROR_QUIET)
  if(changed EQUAL 1)
    string(APPEND commit "-dirty")
  endif()
endif()
set(text "const char qb_cli_git_commit[] = \"${commit}\";\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT text STREQUAL old)
  file(WRITE ${OUT} "${text}")
endif()
