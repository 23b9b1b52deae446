## bench-router: the edge router's latency against a bare handler (and nginx, when on PATH), its max
## throughput and an agent's RSS, under vegeta (built once into bin/tools). BENCH_RATE, BENCH_DURATION,
## BENCH_MAX_WORKERS, ... or BENCH_ARGS="-rate 2000" change it; see `go run ./bench/router -h`.
VEGETA_VERSION := v12.13.0
VEGETA         := $(TOOLS)/vegeta
$(VEGETA):
	@echo "building vegeta $(VEGETA_VERSION) from the Go module proxy (once)..."
	GOBIN=$(TOOLS) $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

.PHONY: bench-router
bench-router: $(VEGETA)
	$(GO) run ./bench/router -vegeta $(VEGETA) $(BENCH_ARGS)
