#!/usr/bin/env bash
# The CLI is a client of the public API: cli/ (commands and report writers)
# includes include/'s headers, its own, and from src/ only core's helpers
# (errors, JSON on jansson, files, escapes, sha256), which the library
# shares with it so that messages and atomic writes behave alike.  Nothing
# under src/ or include/ reaches back into cli/, and a src/ folder includes
# only the folders before it in RANKS (docs/architecture.md).
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

# Folders of one rank do not include each other.
RANKS="core:0 kernels:1 rounding:2 io:3 text:3 model:4 eval:5 quant:6 train:7 export:7 serve:7"
rank_of() { local r; for r in $RANKS; do [ "${r%:*}" = "$1" ] && { echo "${r#*:}"; return; }; done; echo unknown; }

# back_edges ROOT: includes in ROOT/src that name a folder not before
# their own, and folders missing from RANKS.
back_edges() {
  grep -rnoE --include='*.[ch]' '^#include "[a-z_]+/' "$1/src" | while IFS= read -r hit; do
    file=${hit%%:*}
    from=${file#"$1"/src/}
    from=${from%%/*}
    to=${hit##*\"}
    to=${to%/}
    [ "$from" = "$to" ] && continue
    rf=$(rank_of "$from") rt=$(rank_of "$to")
    if [ "$rf" = unknown ] || [ "$rt" = unknown ] || [ "$rt" -ge "$rf" ]; then echo "$hit"; fi
  done
}

out=$(back_edges "$SRC")
check "src/ folders include only earlier ones: $out" test -z "$out"
out=$(bad_includes "$SRC")
check "cli/ and src/ keep the layers apart: $out" test -z "$out"

# The checks themselves: each sees the breaks planted in a small tree
# (an internal header in a command, a library file including a report
# header, kernels including the model) and passes the rest.
mkdir -p "$TMP/t/cli" "$TMP/t/src/model" "$TMP/t/include"
printf '#include "cli.h"\n#include "model/model.h"\n' >"$TMP/t/cli/cmd_x.c"
printf '#include "report/report.h"\n' >"$TMP/t/src/model/x.c"
out=$(bad_includes "$TMP/t")
check "the check sees cmd_x.c's model/model.h" grep -q 'cmd_x.c:2:#include "model/model.h"' <<<"$out"
check "the check sees a library file including report/" grep -q 'x.c:1:#include "report/report.h"' <<<"$out"
check "the check passes cli.h" test "$(wc -l <<<"$out")" -eq 2
mkdir -p "$TMP/t/src/kernels" "$TMP/t/src/rounding"
printf '#include "core/error.h"\n#include "model/model.h"\n' >"$TMP/t/src/kernels/k.c"
printf '#include "kernels/kernels.h"\n' >"$TMP/t/src/rounding/r.c"
out=$(back_edges "$TMP/t")
check "the order check sees kernels including model" grep -q 'k.c:2:#include "model/' <<<"$out"
check "the order check sees the report folder, which has no rank" grep -q 'x.c:1:#include "report/' <<<"$out"
check "the order check passes earlier folders" test "$(wc -l <<<"$out")" -eq 2

finish
