## bench-signals: signal messages (50 features x 20 bins) sent to an embedded queue and consumed and
## evaluated (every drift metric) by the drift Monitor on 2 cores, against decoding alone in the same run.
## Final line: bench=signals msgs_per_s= eval_p99_us= decode_only_msgs_per_s= lost=
## SIGNALS_ARGS passes more flags (see `go run ./bench/signals -h`), e.g. SIGNALS_ARGS="-batch 1".
SIGNALS_ARGS ?=
.PHONY: bench-signals
bench-signals:
	$(GO) run ./bench/signals $(SIGNALS_ARGS)
