# Deployment artefacts and drivers: `make test-deploy`. Included by the
# top-level Makefile (-include deploy/deploy.mk).

## test-deploy: Helm charts render with the Helm SDK and decode strictly into Kubernetes API types
## (plus helm lint), the Dockerfile's build stage makes a static binary, the Bicep files pass a
## structural check, and the amlarc/gitops drivers' tests (SDK fakes, real local git). deploy/validate
## is its own module so Helm's dependencies stay out of modelfleet's go.mod. The first run builds
## the binary with -trimpath from a cold cache (minutes); TEST_DEPLOY_FLAGS=-short skips that build.
TEST_DEPLOY_FLAGS ?=
.PHONY: test-deploy
test-deploy:
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m $(TEST_DEPLOY_FLAGS) ./...
	$(GO) vet ./drivers/...
	$(GO) test -count=1 $(TEST_DEPLOY_FLAGS) ./drivers/...
