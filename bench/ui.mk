## bench-ui: the fleet dashboard in headless Chromium (Debian's chromium, make deps) against a real
## gateway (TLS, sign-in, bbolt directory) holding UI_SITES simulated sites: time to first render and
## fully loaded of the fleet page against an empty fleet's in the same run, and the gateway's CPU per
## open dashboard (live updates) at idle against none open.
## Final line: bench=ui sites= fleet_<n>_first_ms= fleet_<n>_loaded_ms= fleet_<n>_ratio= idle_cpu_per_dashboard_pct= ...
## UI_ARGS passes more flags (see `go run ./bench/ui -h`), e.g. UI_ARGS="-dashboards 10 -idle 60s".
UI_SITES ?= 1000,10000
UI_ARGS ?=
.PHONY: bench-ui
bench-ui:
	$(GO) run ./bench/ui -sites $(UI_SITES) $(UI_ARGS)
