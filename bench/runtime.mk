## bench-runtime: the model formats on the same trees (LightGBM text, XGBoost JSON, ONNX): single-row and
## 32-row latency and allocations against the leaves baseline, then the router's p50/p99 per format at
## BENCH_RATE against the bare-handler floor, through bench/router (vegeta from bench/router.mk).
## RUNTIME_ARGS="-trees 500 -skip-router" change it; see `go run ./bench/runtime -h`.
.PHONY: bench-runtime
bench-runtime: $(TOOLS)/vegeta
	GO=$(GO) $(GO) run ./bench/runtime -vegeta $(TOOLS)/vegeta $(RUNTIME_ARGS)
