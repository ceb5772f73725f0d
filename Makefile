# promptq: `make demo` runs the demo, `make test` runs every check CI runs.
.PHONY: demo test build bench fuzz

build:
	go build -o bin/promptq ./cmd/promptq

demo:
	go run ./cmd/promptq demo

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchmem ./quota/...

# Short fuzzing of the header parsers (longer by hand: FUZZTIME=10m make fuzz).
FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz FuzzParseHeaders -fuzztime $(FUZZTIME) ./quota/
	go test -run '^$$' -fuzz FuzzParseResetDuration -fuzztime $(FUZZTIME) ./quota/
