#!/usr/bin/env bash
# make install's tree is usable by a C program: installed to a temporary
# PREFIX, a small program built with pkg-config's flags alone (no source
# tree on its include or library path) predicts as the CLI does.
set -u
. "$(dirname "$0")/lib.sh"
BUILD=${QB_BUILD_DIR:-$SRC/build}
M=$SRC/models/bert-mini-sst2
P=$TMP/qb
cmake --install "$BUILD" --prefix "$P" >/dev/null || fail "cmake --install"
for f in bin/qbert include/qbert.h lib/libqbert.so lib/pkgconfig/qbert.pc; do
  check "installed $f" test -e "$P/$f"
done
# Nothing but include/qbert.h's functions is exported.
nm -D --defined-only "$P/lib/libqbert.so" | awk '{print $3}' | sort >"$TMP/exported"
grep -oE '\bqb_[a-z0-9_]+\(' "$SRC/include/qbert.h" | tr -d '(' | sort -u >"$TMP/declared"
check "exports are exactly qbert.h's functions" diff "$TMP/exported" "$TMP/declared"

cat >"$TMP/demo.c" <<'CEOF'
#include <qbert.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    qb_error err = {0};
    qb_model *m = NULL;
    qb_session *s = NULL;
    qb_encoding e = {0};
    qb_session_params sp = qb_session_default_params();
    if (qb_model_load(argv[1], NULL, &m, &err) || qb_session_create(m, &sp, &s, &err) ||
        qb_tokenize(m, argv[2], strlen(argv[2]), NULL, 0, sp.max_seq, &e, &err) ||
        qb_session_run_encodings(s, (const qb_encoding *[]){&e}, 1, &err))
        return fprintf(stderr, "demo: %s\n", err.msg), 1;
    qb_model_info info;
    qb_model_get_info(m, &info);
    printf("%s\n", qb_model_label(m, qb_argmax(qb_session_logits(s, 0), info.num_labels)));
    qb_encoding_free(&e);
    qb_session_free(s);
    qb_model_free(m);
    return 0;
}
CEOF
export PKG_CONFIG_PATH=$P/lib/pkgconfig
flags=$(pkg-config --cflags --libs qbert) || fail "pkg-config qbert"
# Under the sanitizers the installed library carries their runtime: so must the program.
san=; [ -n "$SANITIZE" ] && san="-fsanitize=address,undefined"
check "compiles against the installed tree" cc -std=c11 -Wall -Werror $san -o "$TMP/demo" "$TMP/demo.c" $flags
for text in "a gripping, beautifully acted film" "the plot is thin and the jokes fall flat"; do
  got=$(LD_LIBRARY_PATH=$P/lib "$TMP/demo" "$M" "$text")
  want=$("$P/bin/qbert" predict "$M" "$text" | cut -f1)
  check "demo predicts '$text' as the CLI ($want)" test -n "$want" -a "$got" = "$want"
done
check "an error comes back as a message" sh -c "LD_LIBRARY_PATH=$P/lib '$TMP/demo' '$TMP/nope' x 2>&1 | grep -q 'nope/config.json'"
finish
