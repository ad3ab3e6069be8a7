//go:build tools

// Package tools names the command 21-kube.sh builds, so `go mod tidy` keeps
// its dependencies in go.sum.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
