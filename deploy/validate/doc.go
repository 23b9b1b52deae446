// Package validate checks the deployment artefacts under deploy/: the Helm
// charts render with the Helm SDK and every rendered manifest decodes
// strictly into the Kubernetes API types; the Dockerfile's build makes a
// static binary; the Bicep files pass a structural check (no Bicep parser
// can be had offline). It is its own module so that Helm's dependencies
// stay out of modelfleet's; `make test-deploy` runs it.
package validate
