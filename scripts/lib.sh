# shellcheck shell=bash
# Shared by scripts/quota-page.sh and scripts/screenshot.sh: a throwaway
# loopback set-up (temp dir, promptq binary, redis-server, fake provider)
# that is torn down on exit. Source it after setting `name` (the prefix of
# every message); it cd's to the repository root.
#
# It defines: work (the temp dir), pids (background processes to stop),
# fail MSG, free_port, wait_for CMD..., need_chromium, build_promptq (sets
# pq), start_redis (sets redis_port and redis), start_fake ARGS... (sets
# fake_port).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=$(mktemp -d)
pids=()
redis_port=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # SHUTDOWN returns once redis-server has stopped writing into $work.
  if [ -n "${redis_port:-}" ]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# fail MSG prints MSG and exits 1; a script may define on_fail to keep
# evidence first.
fail() {
  echo "$name: FAIL: $*" >&2
  if declare -F on_fail >/dev/null; then on_fail; fi
  exit 1
}

# need_chromium installs Debian's chromium when it is missing and we are
# root, else fails.
need_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$name: installing chromium (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    fail "chromium is missing; install it first"
  fi
}

# free_port prints a loopback port nothing listens on (racy, but fine here).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 20000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  fail "no free port found"
}

# wait_for runs "$@" until it succeeds, for at most ~10s.
wait_for() {
  for _ in $(seq 1 100); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "timed out waiting for: $*"
}

build_promptq() {
  pq=$work/promptq
  go build -o "$pq" ./cmd/promptq
}

start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --dir "$work" --pidfile "$work/redis.pid" --logfile "$work/redis.log"
  wait_for redis-cli -p "$redis_port" ping
  redis="redis://127.0.0.1:$redis_port/0"
}

# start_fake ARGS... runs `promptq fake-openai` with ARGS in the background.
start_fake() {
  fake_port=$(free_port)
  "$pq" fake-openai --addr "127.0.0.1:$fake_port" "$@" >"$work/fake.log" 2>&1 &
  pids+=($!)
  wait_for bash -c "echo >/dev/tcp/127.0.0.1/$fake_port"
}
