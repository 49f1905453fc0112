#!/usr/bin/env bash
# One-off check (not CI, it takes long): the float-sensitive test files under each CPU code
# path of issue 26, one run after another, then a pass/fail table.  A CPU path is what
# decides the last bits: torch's kernels (ATEN_CPU_CAPABILITY), MKL's (MKL_ENABLE_INSTRUCTIONS),
# numba's target (NUMBA_CPU_NAME), the thread count.  Each row clears all of those variables
# and sets one (the first row none), so the caller's environment does not leak in.
#
#   benchmarks/cpu_path_tests.sh > /tmp/cpu_path_tests.log 2>&1 &    # extra args go to pytest
#
# Each row's full pytest output is kept in the folder printed at the end.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FILES=(tests/test_seq*.py tests/test_checker.py tests/test_kmnist*.py tests/test_pipeline_*.py)
VARS=(ATEN_CPU_CAPABILITY MKL_ENABLE_INSTRUCTIONS NUMBA_CPU_NAME OMP_NUM_THREADS)
ROWS=("(none)" ATEN_CPU_CAPABILITY=default ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
      NUMBA_CPU_NAME=generic OMP_NUM_THREADS=1)
LOGS=$(mktemp -d /tmp/cpu_path_tests.XXXXXX)
unset_args=()
for v in "${VARS[@]}"; do unset_args+=(-u "$v"); done

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "files: ${FILES[*]}"
table=()
for i in "${!ROWS[@]}"; do
  row=${ROWS[$i]}
  setting=()
  [ "$row" != "(none)" ] && setting=("$row")
  log="$LOGS/$i.log"
  start=$SECONDS
  echo "[$(date +%T)] $row ..."
  env "${unset_args[@]}" "${setting[@]}" "$PY" -m pytest "${FILES[@]}" -q -p no:cacheprovider \
    "$@" > "$log" 2>&1
  rc=$?
  seconds=$((SECONDS - start))
  capability=$(env "${unset_args[@]}" "${setting[@]}" "$PY" -c \
    "import torch; print(torch.backends.cpu.get_cpu_capability())" 2>/dev/null)
  counts=$(grep -E '^=*.* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*//')
  [ $rc -eq 0 ] && verdict=PASS || verdict="FAIL (rc $rc)"
  table+=("$(printf '%-30s %-8s %-12s %6ss  %s' "$row" "$capability" "$verdict" "$seconds" "$counts")")
  grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /' > "$LOGS/$i.failed"
  echo "  $verdict in ${seconds}s: $counts"
  cat "$LOGS/$i.failed"
done

echo
printf '%-30s %-8s %-12s %7s  %s\n' "variable set" "aten" "result" "time" "tests"
for i in "${!table[@]}"; do
  echo "${table[$i]}"
  cat "$LOGS/$i.failed"
done
echo "logs: $LOGS"
