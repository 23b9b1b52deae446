# bench-events: webhook → Temporal accepted, against starting the same
# workflows directly, on a real Temporal dev server (see bench/events/main.go).
# BENCH_EVENTS_FLAGS passes flags, e.g. -rates 50,100,200,400 -duration 20s.
BENCH_EVENTS_FLAGS ?=
.PHONY: bench-events
bench-events: tools
	$(GO) run ./bench/events -temporal $(TEMPORAL) $(BENCH_EVENTS_FLAGS)
