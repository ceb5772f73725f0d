// Package deploy holds promptq's deployment files: the container image
// (Dockerfile), a docker compose stack (docker-compose.yml) and Kubernetes
// manifests (k8s/). It has no Go code of its own; lint_test.go checks the
// files against the promptq binary's --help output, so that a renamed flag or
// environment variable breaks `go test ./deploy/` instead of a deployment.
package deploy
