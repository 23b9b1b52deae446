## chaos: releases under SIGKILLs of every process (gateway, worker, Temporal, agents), agents offline,
## a corrupted model file; invariants checked throughout. Authentication on (-auth): TLS, OIDC tokens,
## agents enrolled with join tokens on mTLS, signed releases; a site's disk full (a tmpfs: root); a workload
## runner process per site on MQTT, killed too. CHAOS_ARGS: see `go run ./bench/chaos -h`.
## Final line: bench=chaos kills= releases= completed= stuck=0 duplicate_steps=0 revision_regressions=0
##   score_errors= lost_signals=0 max_recovery_s= auth=on enrolments= reenrolled=0 unsigned=0
##   disk_full=failed_enospc disk_recovery_s= workload_readings= workload_decisions= workload_dead_letters=
##   workload_lost=0 workload_duplicates= workload_extra_duplicates=0 workload_resumed=
CHAOS_ARGS ?=
.PHONY: chaos
chaos: build tools
	$(GO) run ./bench/chaos -modelfleet bin/modelfleet -temporal $(TEMPORAL) $(CHAOS_ARGS)

## chaos-store: the same (authentication on: the replicas share one --pki-dir, enrolments in the database) with three gateway replicas on one PostgreSQL (started by the run; Debian's
## postgresql, make deps) behind a balancer: replicas killed, PostgreSQL restarted mid-release.
## Final line gains store=postgres replicas= store_restarts=
CHAOS_STORE_ARGS ?= -sites 8
.PHONY: chaos-store
chaos-store: build tools
	$(GO) run ./bench/chaos -modelfleet bin/modelfleet -temporal $(TEMPORAL) -store postgres -replicas 3 $(CHAOS_STORE_ARGS)

## chaos-store-fleet: chaos-store with 1,000 more sites whose real edge agents share one process (-fleet-sites;
## bench/chaos/fleet.go), enrolled with join tokens through the balancer, in every release's waves, observed by
## the same invariants; that process is SIGKILLed and restarted too (kind fleet). Final line gains fleet_sites=
## The workload runners run too (issue 14: their outcomes were counted lost when the harness ran out of descriptors
## or its observer lost its connection; docs/rollouts.md). A diagnostics line says where lost readings went.
CHAOS_FLEET_ARGS ?= -sites 8 -fleet-sites 1000 -kills 5
.PHONY: chaos-store-fleet
chaos-store-fleet: build tools
	$(GO) run ./bench/chaos -modelfleet bin/modelfleet -temporal $(TEMPORAL) -store postgres -replicas 3 $(CHAOS_FLEET_ARGS)
