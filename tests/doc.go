// Package tests holds promptq's multi-process tests: the real promptq binary
// (built once by TestMain), several worker processes, a real Redis and the
// fake OpenAI provider (internal/fakeopenai) running inside the test process.
//
// They need a real Redis: TEST_REDIS_URL when set, otherwise a throwaway
// redis-server on a free loopback port (skipped when redis-server is not
// installed). Tests isolate themselves by queue and account names, so they
// share one Redis and run in parallel.
//
//	go test -race ./tests/                                   # throwaway redis-server
//	TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test ./tests/ # existing Redis
//	go test -short ./tests/                                  # skip the slow ones
package tests
