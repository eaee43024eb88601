#!/usr/bin/env bash
# The CLI is a client of the public API: cli/ (commands and report writers)
# includes include/'s headers, its own, and from src/ only core's helpers
# (errors, JSON on jansson, files, escapes, sha256), which the library
# shares with it so that messages and atomic writes behave alike.  Nothing
# under src/ or include/ reaches back into cli/.
set -u
. "$(dirname "$0")/lib.sh"

# bad_includes ROOT: the quoted includes under ROOT/cli that break the rule,
# then those under ROOT/src and ROOT/include that name the CLI's headers.
bad_includes() {
  local allowed='^(qbert|qbert_serve|cli)\.h$|^report/[a-z_]+\.h$|^core/(error|json|fs|escape|sha256)\.h$'
  grep -rnoE --include='*.[ch]' '^#include "[^"]+"' "$1/cli" | while IFS= read -r hit; do
    inc=${hit#*\"}
    inc=${inc%\"}
    [[ $inc =~ $allowed ]] || echo "$hit"
  done
  grep -rnE --include='*.[ch]' '^#include "(cli|report/)' "$1/src" "$1/include"
}

out=$(bad_includes "$SRC")
check "cli/ and src/ keep the layers apart: $out" test -z "$out"

# The check itself fails on an internal header in a command, and on a
# library file that includes a report header.
mkdir -p "$TMP/t/cli" "$TMP/t/src/model" "$TMP/t/include"
printf '#include "cli.h"\n#include "model/model.h"\n' >"$TMP/t/cli/cmd_x.c"
printf '#include "report/report.h"\n' >"$TMP/t/src/model/x.c"
out=$(bad_includes "$TMP/t")
check "the check sees cmd_x.c's model/model.h" grep -q 'cmd_x.c:2:#include "model/model.h"' <<<"$out"
check "the check sees a library file including report/" grep -q 'x.c:1:#include "report/report.h"' <<<"$out"
check "the check passes cli.h" test "$(wc -l <<<"$out")" -eq 2

finish
