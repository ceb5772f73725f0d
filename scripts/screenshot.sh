#!/usr/bin/env bash
# Takes docs/asynqmon-paused.png and docs/asynqmon-queue.png: asynqmon as served
# by `promptq serve`, showing queues "critical" and "default" with some tasks
# completed, some pending, and both queues paused by `promptq pause`.
#
# Everything runs on loopback and is thrown away afterwards: a redis-server
# (no persistence, temp dir), `promptq fake-openai`, one short-lived worker and
# `promptq serve`. Needs go, redis-server, redis-cli and chromium (Debian's
# chromium package is installed when missing and we are root).
#
# Usage: scripts/screenshot.sh            (run from anywhere)
name=screenshot
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

need_chromium
build_promptq
start_redis
echo "screenshot: redis-server on 127.0.0.1:$redis_port"
start_fake

# write_tasks N PREFIX writes N prompt tasks, one in three on critical. IDs use
# "_", not "-": asynqmon shows only the part of a task ID before the first "-".
write_tasks() {
  local n=$1 prefix=$2 i q
  for i in $(seq 1 "$n"); do
    if [ $((i % 3)) = 0 ]; then q=critical; else q=default; fi
    printf '{"id":"%s_%d","model":"gpt-4o-mini","input":"Summarise item %d in one line.","max_output_tokens":32,"queue":"%s"}\n' \
      "$prefix" "$i" "$i" "$q"
  done
}

write_tasks 30 first >"$work/first.jsonl"
"$pq" enqueue --redis "$redis" --log-format json --file "$work/first.jsonl"

# One worker, until at least 20 tasks have completed; then SIGTERM it.
OPENAI_API_KEY=sk-x "$pq" worker --redis "$redis" --log-format json \
  --openai-base-url "http://127.0.0.1:$fake_port/v1" \
  --queues critical=6,default=3 --account shot --concurrency 4 >"$work/worker.log" 2>&1 &
worker=$!
pids+=($worker)
completed() {
  local a b
  a=$(redis-cli -p "$redis_port" zcard 'asynq:{default}:completed')
  b=$(redis-cli -p "$redis_port" zcard 'asynq:{critical}:completed')
  [ $((a + b)) -ge 20 ]
}
wait_for completed
kill -TERM "$worker"
wait "$worker" || true

# A few more that stay pending, then pause the account (its asynq queues too).
write_tasks 12 second >"$work/second.jsonl"
"$pq" enqueue --redis "$redis" --log-format json --file "$work/second.jsonl"
"$pq" pause --redis "$redis" --log-format json --account shot --reason "screenshot: manual pause"
"$pq" status --redis "$redis" --log-format json --account shot || true

serve_port=$(free_port)
"$pq" serve --redis "$redis" --log-format json --addr "127.0.0.1:$serve_port" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for curl -fsS "http://127.0.0.1:$serve_port/healthz"

# shot URL FILE takes one headless screenshot.
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$work/chrome-$(basename "$2" .png)" \
    --window-size=1400,900 --virtual-time-budget=10000 \
    --screenshot="$2" "$1" >"$work/chrome.log" 2>&1
  echo "screenshot: wrote $2 ($(wc -c <"$2") bytes)"
}

mkdir -p docs
shot "http://127.0.0.1:$serve_port/monitoring/" docs/asynqmon-paused.png
shot "http://127.0.0.1:$serve_port/monitoring/queues/default?status=pending" docs/asynqmon-queue.png
