## chaos: releases under SIGKILLs of every process (gateway, worker, Temporal, agents), agents offline,
## a corrupted model file; invariants checked throughout. CHAOS_ARGS: see `go run ./bench/chaos -h`.
## Final line: bench=chaos kills= releases= completed= stuck=0 duplicate_steps=0 revision_regressions=0
##   score_errors= lost_signals=0 max_recovery_s=
CHAOS_ARGS ?=
.PHONY: chaos
chaos: build tools
	$(GO) run ./bench/chaos -modelfleet bin/modelfleet -temporal $(TEMPORAL) $(CHAOS_ARGS)
