#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   ./scripts/test.sh
# installs the build and test dependencies, builds a Release build (build/)
# and an ASan+UBSan build (build-asan/), starts a redis-server on a free
# port, runs the unit tests (ctest) in both builds and the integration tests
# (node --test, tests/integration) against the ASan binary. Exits non-zero
# if anything failed; the last lines are the test runners' own summaries.
#
#   SLUICE_SKIP_APT=1   skip apt-get (quick local runs)
#   SLUICE_BUILD_DIR, SLUICE_ASAN_BUILD_DIR   build directories (default build, build-asan)
#   SLUICE_TEST_FILES   integration test files to run (default: all)
#   SLUICE_TEST_VERBOSE=1  copy sluice's stderr to the test output
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc 2>/dev/null || echo 2)"
BUILD="${SLUICE_BUILD_DIR:-build}"
ASAN_BUILD="${SLUICE_ASAN_BUILD_DIR:-build-asan}"
LOGDIR="$(mktemp -d /tmp/sluice-test-logs.XXXXXX)"
START=$(date +%s)

step() { printf '\n==== %s (%ss)\n' "$*" "$(($(date +%s) - START))"; }

# --- 1. packages ---------------------------------------------------------
if [[ "${SLUICE_SKIP_APT:-0}" != 1 ]]; then
  step "installing packages"
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "run as root (or set SLUICE_SKIP_APT=1)" >&2; exit 1; }
    SUDO="sudo"
  fi
  PKGS=(build-essential cmake pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev
        libhiredis-dev libyaml-dev libpcre2-dev libssl-dev libmimalloc-dev redis-server nginx-light wrk
        curl ca-certificates)
  # A Node from elsewhere (e.g. NodeSource) ships its own npm and conflicts
  # with Debian's npm package: only install them when missing.
  command -v node >/dev/null || PKGS+=(nodejs)
  command -v npm >/dev/null || PKGS+=(npm)
  # The systemd notify test listens on a unix datagram socket with Python.
  command -v python3 >/dev/null || PKGS+=(python3)
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${PKGS[@]}"
fi

NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if (( NODE_MAJOR < 20 )); then
  echo "warning: node $(node --version): the openai and @anthropic-ai/sdk clients ask for Node 20 or later" >&2
fi

# --- 2. node packages ----------------------------------------------------
step "npm ci (tests/)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

# --- 3. builds -----------------------------------------------------------
# A tree that does not build is a failure, but the suite goes on as far as
# it can: if everything but the daemon builds, the daemon is still tested.
FAILED=0
BUILD_FAILURES=()
build_tree() { # dir description cmake-args...
  local dir="$1" what="$2"
  shift 2
  step "building $dir/ ($what)"
  cmake -S . -B "$dir" "$@" >"$LOGDIR/cmake-$(basename "$dir").log" || { cat "$LOGDIR/cmake-$(basename "$dir").log"; exit 1; }
  if ! cmake --build "$dir" -j"$JOBS"; then
    FAILED=1
    BUILD_FAILURES+=("$dir")
    echo "!!!! $dir: the build failed; building whatever still builds" >&2
    cmake --build "$dir" -j"$JOBS" -- -k >/dev/null 2>&1 || true
    cmake --build "$dir" -j"$JOBS" --target sluice || { echo "!!!! $dir/sluice does not build" >&2; exit 1; }
  fi
}
build_tree "$BUILD" Release -DCMAKE_BUILD_TYPE=Release
build_tree "$ASAN_BUILD" "ASan+UBSan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=ON

# --- 4. redis ------------------------------------------------------------
REDIS_PID=""
cleanup() {
  if [[ -n "$REDIS_PID" ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
if command -v redis-server >/dev/null; then
  step "starting redis-server"
  SLUICE_TEST_REDIS_PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  redis-server --port "$SLUICE_TEST_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$LOGDIR/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 100); do
    redis-cli -p "$SLUICE_TEST_REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -p "$SLUICE_TEST_REDIS_PORT" ping | grep -q PONG || { echo "redis-server did not start" >&2; exit 1; }
  export SLUICE_TEST_REDIS_PORT
  echo "redis-server on 127.0.0.1:$SLUICE_TEST_REDIS_PORT"
else
  echo "warning: redis-server not installed; tests that need it will be skipped" >&2
fi

# --- 5. tests ------------------------------------------------------------
declare -A RESULT
run() { # name logfile command...
  local name="$1" log="$2"
  shift 2
  step "$name"
  set +e
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  RESULT[$name]=$rc
  if [[ $rc != 0 ]]; then FAILED=1; fi
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

run "unit tests (Release)" "$LOGDIR/ctest-release.log" ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS"
run "unit tests (ASan+UBSan)" "$LOGDIR/ctest-asan.log" ctest --test-dir "$ASAN_BUILD" --output-on-failure -j"$JOBS"

cd tests
if [[ -n "${SLUICE_TEST_FILES:-}" ]]; then
  read -r -a FILES <<<"$SLUICE_TEST_FILES"
else
  FILES=(integration/*.test.mjs)
fi
# Bounded: no test may take over 2 minutes, a test file that keeps its event
# loop busy after its tests is ended, and the whole run is capped.
NODE_ARGS=(--test --test-reporter=spec)
if node --help | grep -q -- --test-timeout; then NODE_ARGS+=(--test-timeout=120000); fi
if node --help | grep -q -- --test-force-exit; then NODE_ARGS+=(--test-force-exit); fi
# Twice: against the Release binary, the one users run (optimised, on
# mimalloc), and against the ASan+UBSan one, which turns a memory error or
# undefined behaviour anywhere the suite reaches into a failure.
run "integration tests (Release binary)" "$LOGDIR/integration-release.log" \
  timeout --kill-after=10 1500 env SLUICE_BIN="$ROOT/$BUILD/sluice" node "${NODE_ARGS[@]}" "${FILES[@]}"
run "integration tests (ASan+UBSan binary)" "$LOGDIR/integration.log" \
  timeout --kill-after=10 1500 env SLUICE_BIN="$ROOT/$ASAN_BUILD/sluice" node "${NODE_ARGS[@]}" "${FILES[@]}"
cd "$ROOT"

# --- 6. summary ------------------------------------------------------------
printf '\n==== summary (%ss, logs in %s)\n' "$(($(date +%s) - START))" "$LOGDIR"
for dir in "${BUILD_FAILURES[@]}"; do printf '%-40s %s\n' "build $dir/:" "FAILED (see the compiler errors above)"; done
for name in "unit tests (Release)" "unit tests (ASan+UBSan)" "integration tests (Release binary)" \
  "integration tests (ASan+UBSan binary)"; do
  rc="${RESULT[$name]:-not run}"
  printf '%-40s %s\n' "$name:" "$([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)")"
done
echo
echo "ctest (Release):    $(grep -E 'tests passed|No tests were found' "$LOGDIR/ctest-release.log" | tail -1)"
echo "ctest (ASan+UBSan): $(grep -E 'tests passed|No tests were found' "$LOGDIR/ctest-asan.log" | tail -1)"
for log in integration-release integration; do
  echo "node --test ($log.log: $([[ $log == integration ]] && echo ASan+UBSan || echo Release) binary):"
  grep -E '^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$LOGDIR/$log.log" | tail -8 || true
done

# One plain closing line over everything that ran: "N passed, N failed".
TOTAL_PASS=0
TOTAL_FAIL=0
for log in "$LOGDIR/ctest-release.log" "$LOGDIR/ctest-asan.log"; do
  line="$(grep -oE '[0-9]+ tests failed out of [0-9]+' "$log" 2>/dev/null | tail -1 || true)"
  if [[ -n "$line" ]]; then
    f="${line%% *}"
    t="${line##* }"
    TOTAL_PASS=$((TOTAL_PASS + t - f))
    TOTAL_FAIL=$((TOTAL_FAIL + f))
  fi
done
for log in "$LOGDIR/integration-release.log" "$LOGDIR/integration.log"; do
  np="$(grep -E '^ℹ pass [0-9]+' "$log" 2>/dev/null | tail -1 | awk '{print $3}' || true)"
  nf="$(grep -E '^ℹ fail [0-9]+' "$log" 2>/dev/null | tail -1 | awk '{print $3}' || true)"
  TOTAL_PASS=$((TOTAL_PASS + ${np:-0}))
  TOTAL_FAIL=$((TOTAL_FAIL + ${nf:-0}))
done
if [[ "$FAILED" != 0 && "$TOTAL_FAIL" == 0 ]]; then TOTAL_FAIL=1; fi # a build or runner failure
echo
echo "sluice: $TOTAL_PASS passed, $TOTAL_FAIL failed"
exit "$FAILED"
