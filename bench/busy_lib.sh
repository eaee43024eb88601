# Shared by the busy-machine benches (sourced): rounds of two binaries,
# idle and beside a busy loop pinned to CPU 1, and their medians.
BUSY=
stop_busy() { if [ -n "$BUSY" ]; then kill "$BUSY" 2>/dev/null || true; wait "$BUSY" 2>/dev/null || true; BUSY=; fi; }

# busy_rounds ROUNDS OUT MEASURE: for each round, idle then busy, runs
# `MEASURE new|base` for both binaries, A B then B A, so background load
# drifts over both alike, and appends "binary condition value" to OUT.
# A MEASURE that fails stops the script.
busy_rounds() {
  local rounds=$1 out=$2 measure=$3 order cond b v
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="new base"; else order="base new"; fi
    for cond in idle busy; do
      if [ $cond = busy ]; then
        taskset -c 1 sh -c 'while :; do :; done' &
        BUSY=$!
      fi
      for b in $order; do
        v=$("$measure" $b) || exit 1
        echo "$b $cond $v" >>"$out"
      done
      stop_busy
    done
  done
}

# busy_median OUT BINARY CONDITION: "median min max" of its values
busy_median() {
  awk -v b="$2" -v c="$3" '$1 == b && $2 == c { print $3 }' "$1" | sort -g |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                             printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}
