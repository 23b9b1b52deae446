## bench-workload: sensor message published → decision received through the embedded MQTT broker, the
## bearing-failure workload and a real edge router on loopback, at 1,000 msg/s for one site, against the
## same path with the model called in-process, and the e2e path with the workload's code as the
## WebAssembly module built from examples/bearing-failure/workload/module. Final line:
## bench=workload rate= e2e_p50_ms= e2e_p99_ms= floor_p99_ms= wasm_e2e_p99_ms= ref_e2e_p99_ms= wasm_ratio= lost= dead_lettered=
## WORKLOAD_ARGS passes flags (see `go run ./bench/workload -h`), e.g. WORKLOAD_ARGS="-duration 30s".
WORKLOAD_ARGS ?=
.PHONY: bench-workload
bench-workload:
	$(GO) run ./bench/workload $(WORKLOAD_ARGS)
