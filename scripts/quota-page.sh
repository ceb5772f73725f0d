#!/usr/bin/env bash
# Tests the quota page (/quota/ of `promptq serve`) in a real headless
# Chromium against a live batch, and takes docs/quota-page-outage.png during
# a quota outage.
#
# Everything runs on loopback and is thrown away afterwards: a redis-server
# (no persistence, temp dir), `promptq fake-openai` at 120 requests/min, one
# worker, `promptq serve` with an admin token, and 300 tasks. While the batch
# runs, Chromium loads the page (the token goes in the URL fragment, which is
# never sent to the server) and the script checks from the DOM that every
# chart holds data. Then the fake provider answers insufficient_quota, the
# worker pauses the account, and a second load checks that the page says
# "paused until" and takes the screenshot.
#
# Usage: scripts/quota-page.sh   (needs go, redis-server, redis-cli, curl, chromium)
name=quota-page
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
on_fail() { cp "$work"/*.html "$work"/*.log /tmp/ 2>/dev/null || true; } # kept for a look: /tmp/running.html ...

need_chromium
build_promptq
start_redis
start_fake --rpm 120 --tpm 40000 --burst 5s

for i in $(seq 1 300); do
  printf '{"id":"qp_%d","model":"gpt-4o-mini","input":"Summarise item %d in one line.","max_output_tokens":64}\n' "$i" "$i"
done >"$work/tasks.jsonl"
"$pq" enqueue --redis "$redis" --log-format json --file "$work/tasks.jsonl"

ops_port=$(free_port)
OPENAI_API_KEY=sk-x "$pq" worker --redis "$redis" --log-format json \
  --openai-base-url "http://127.0.0.1:$fake_port/v1" --account quota-demo \
  --concurrency 4 --ops-addr "127.0.0.1:$ops_port" >"$work/worker.log" 2>&1 &
pids+=($!)
wait_for "$pq" probe --url "http://127.0.0.1:$ops_port/healthz"

token=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
serve_port=$(free_port)
PROMPTQ_ADMIN_TOKEN=$token "$pq" serve --redis "$redis" --log-format json --addr "127.0.0.1:$serve_port" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for "$pq" probe --url "http://127.0.0.1:$serve_port/healthz"
# A 5-request burst then 2/s: the buckets move, and 429s come.
sleep 4

# chrome MODE OUT: one headless Chromium run on the page, 8 s of virtual time
# (8 polls). MODE is --dump-dom (DOM to OUT) or --screenshot=OUT.
page="http://ops:$token@127.0.0.1:$serve_port/quota/#token=$token"
chrome() {
  local mode=$1 out=$2
  local args=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --hide-scrollbars --user-data-dir="$work/chrome-$RANDOM" --window-size=1400,1000
    --virtual-time-budget=8000)
  if [ "$mode" = --dump-dom ]; then
    chromium "${args[@]}" --dump-dom "$page" >"$out" 2>"$work/chrome.log"
  else
    chromium "${args[@]}" "$mode=$out" "$page" >"$work/chrome.log" 2>&1
  fi
}

# points CHART FILE prints the number of points the page drew on CHART.
points() { { grep -o "data-chart=\"$1\" data-points=\"[0-9]*\"" "$2" || true; } | head -1 | { grep -o '[0-9]*"$' || true; } | tr -d '"'; }

chrome --dump-dom "$work/running.html"
for c in requests tokens throttled; do
  n=$(points "$c" "$work/running.html")
  echo "quota-page: chart $c holds ${n:-0} points while the batch runs"
  [ "${n:-0}" -ge 3 ] || fail "chart $c has ${n:-0} points (want >= 3); DOM in $work/running.html"
done
grep -q 'data-paused="false"' "$work/running.html" || fail "the account is not shown running"

# The outage: every request gets 429 insufficient_quota; the worker pauses the account.
curl -fsS -X POST "http://127.0.0.1:$fake_port/_fake/mode" -H 'Content-Type: application/json' \
  -d '{"mode":"insufficient_quota","for":"5m"}' >/dev/null
paused() { curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$serve_port/v1/quota" | grep -Eq '"paused": ?true'; }
wait_for paused

chrome --dump-dom "$work/paused.html"
grep -q 'data-paused="true"' "$work/paused.html" || fail "the page does not show the pause"
grep -q 'paused until' "$work/paused.html" || fail "the page does not say 'paused until'"
n=$(points requests "$work/paused.html")
[ "${n:-0}" -ge 3 ] || fail "chart requests has ${n:-0} points during the outage"
echo "quota-page: the page shows the pause: $(grep -o 'paused until [^<]*' "$work/paused.html" | head -1)"

mkdir -p docs
chrome --screenshot docs/quota-page-outage.png
[ -s docs/quota-page-outage.png ] || fail "no screenshot"
echo "quota-page: wrote docs/quota-page-outage.png ($(wc -c <docs/quota-page-outage.png) bytes)"
echo "quota-page: OK"
