#!/usr/bin/env bash
# Runs every check promptq's CI runs: gofmt, go vet, and go test -race on a
# real Redis. Uses TEST_REDIS_URL or REDIS_URL when set; otherwise starts a
# throwaway redis-server on a free loopback port (installing Debian's
# redis-server package first when it is missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/.."

need_redis_server() {
  command -v redis-server >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing redis-server (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "test: redis-server is missing; install it or set TEST_REDIS_URL" >&2
    exit 1
  fi
}

# tests/ starts its own redis-server processes for fault tests.
need_redis_server

if [ -z "${TEST_REDIS_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
  TEST_REDIS_URL=$REDIS_URL
fi
if [ -z "${TEST_REDIS_URL:-}" ]; then
  dir=$(mktemp -d)
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    if redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"; then
      break
    fi
  done
  trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "test: throwaway redis-server on 127.0.0.1:$port"
fi
export TEST_REDIS_URL

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "test: gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 30m "$@" ./...

# Fuzz the rate-limit header parsers (FUZZTIME=10m by hand for longer runs).
for target in FuzzParseHeaders FuzzParseResetDuration; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-60s}" ./quota/
done
