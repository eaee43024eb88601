# Shared by run_smoke.sh and campaign.sh: the fuzz build, the target list,
# a scratch TMPDIR and a runner that keeps QB_FUZZ_JOBS targets going.
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="${QB_FUZZ_BUILD:-$src/build-fuzz}"
jobs="${QB_FUZZ_JOBS:-$(nproc)}"

fuzz_build() {
  if [ ! -f "$build/CMakeCache.txt" ]; then
    CC="${CC:-clang}" cmake -S "$src" -B "$build" -DQB_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build" -j"$jobs" --target fuzz >/dev/null
}

# Sets targets to the arguments, or every tests/fuzz/fuzz_*.c.
fuzz_targets() {
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] && return
  for c in "$src"/tests/fuzz/fuzz_*.c; do n="$(basename "$c" .c)"; targets+=("${n#fuzz_}"); done
}

# A scratch TMPDIR, removed at exit (model_dir writes each input as files).
fuzz_scratch() {
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/qb-fuzz-$1.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  export TMPDIR="$scratch"
}

# fuzz_each FUNCTION: FUNCTION TARGET for every target, jobs at a time.
fuzz_each() {
  local running=0 t
  for t in "${targets[@]}"; do
    if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
    "$1" "$t" &
    running=$((running + 1))
  done
  wait
}
