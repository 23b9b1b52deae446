## bench-rollout: a release through 4 waves to ROLLOUT_SITES simulated sites (real edge agents, one
## process) on a real Temporal dev server, then a breach with automatic rollback and a rejection.
## Final line: bench=rollout sites= rollout_s= rollback_s= max_history_events= flux_pickup_s= rollback_10k_s= verify_overhead_ratio=
## ROLLOUT_ARGS passes more flags (see `go run ./bench/rollout -h`), e.g. ROLLOUT_ARGS=-cpuprofile=cpu.out
ROLLOUT_SITES ?= 1000,10000
.PHONY: bench-rollout
bench-rollout: tools
	$(GO) run ./bench/rollout -sites $(ROLLOUT_SITES) -temporal $(TEMPORAL) $(ROLLOUT_ARGS)
