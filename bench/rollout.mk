## bench-rollout: a release through 4 waves to ROLLOUT_SITES simulated sites (real edge agents, one
## process) on a real Temporal dev server, then a breach with automatic rollback and a rejection.
## Then, in a fresh process, the same rollouts to 1,000 sites on a plain, a signed (sites verify release statements)
## and a secure stack (mTLS-enrolled sites, tokens, signed), side by side, taking turns round by round
## (12 rounds, -overhead-rounds, after 3 warm-up rounds that bring every site and the heap to their steady state): the median of the rounds' ratios to the plain stack.
## Each of those rollouts runs between two garbage collections, none during it, and what it allocated is
## compared too (alloc_ratio: bench/rollout/overhead.go says why).
## Final line: bench=rollout sites= rollout_s= rollback_s= max_history_events= flux_pickup_s= rollback_10k_s=
##   auth_overhead_ratio= verify_overhead_ratio= auth_alloc_ratio= verify_alloc_ratio=
## STORE=postgres REPLICAS=3: the same on REPLICAS gateways sharing one PostgreSQL (started by the run;
## Debian's postgresql, make deps), after the same size on bbolt; final line:
## store=postgres replicas= sites= rollout_s= rollback_s= ratio_vs_bbolt=
## ROLLOUT_ARGS passes more flags (see `go run ./bench/rollout -h`), e.g. ROLLOUT_ARGS=-cpuprofile=cpu.out
ROLLOUT_SITES ?= 1000,10000
STORE ?= bbolt
REPLICAS ?= 1
.PHONY: bench-rollout
bench-rollout: tools
	$(GO) run ./bench/rollout -sites $(ROLLOUT_SITES) -temporal $(TEMPORAL) -store $(STORE) -replicas $(REPLICAS) $(ROLLOUT_ARGS)
