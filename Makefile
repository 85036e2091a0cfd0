# iomt-operator

KUBE_VERSION ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION := $(shell awk '$$1 == "helm.sh/helm/v4" {print $$2}' hack/tools/helm/go.mod)

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM_BIN := $(BIN)/helm-$(HELM_VERSION)
ASSETS := $(BIN)/k8s/$(KUBE_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)
KUBECTL ?= kubectl
NAMESPACE ?= iomt-system
# PKGS are the packages make test runs, e.g. PKGS=./test/install/...
PKGS ?= ./...

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) helm ## Generate the CRDs, and the kustomize bundle from the chart.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	rm -f charts/iomt-operator/files/crds/*.yaml
	cp config/crd/bases/*.yaml charts/iomt-operator/files/crds/
	HELM=$(HELM_BIN) hack/render-config.sh

.PHONY: verify
verify: generate manifests ## Regenerate everything; fail if the tree changes.
	go mod tidy
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above" && exit 1)
	go vet ./...
	@git diff --exit-code -- . ':(exclude)bin' || \
	  (echo "generated files are out of date: run make generate manifests and commit" && exit 1)

.PHONY: test
test: control-plane helm $(CONTROLLER_GEN) ## Run every test against a local kube-apiserver and etcd.
	KUBEBUILDER_ASSETS=$(ASSETS) HELM=$(HELM_BIN) CONTROLLER_GEN=$(CONTROLLER_GEN) \
	  go test $(PKGS) -count=1 -timeout 40m

.PHONY: lint-chart
lint-chart: helm ## Lint the Helm chart.
	$(HELM_BIN) lint --strict charts/iomt-operator

.PHONY: control-plane
control-plane: ## Build kube-apiserver, etcd and kubectl into bin/ (once).
	KUBE_VERSION=$(KUBE_VERSION) hack/build-control-plane.sh

##@ Run

.PHONY: demo
demo: control-plane ## Start a local control plane, run the operator on a sample clinic, print it.
	KUBEBUILDER_ASSETS=$(ASSETS) go run ./cmd/demo

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every MedicalDevice and SegmentPolicy) from the cluster.
	$(KUBECTL) delete -k config/crd

.PHONY: run
run: ## Run the operator here against the cluster of the current kubeconfig.
	go run ./cmd/manager --enable-webhooks=false --namespace=$(NAMESPACE)

.PHONY: build
build: ## Build the operator binary into bin/.
	go build -o $(BIN)/manager ./cmd/manager

IMAGE_REGISTRY ?= ghcr.io/medinaii
IMAGE_TAG ?= $(shell awk '/^appVersion:/ {gsub(/"/, "", $$2); print $$2}' charts/iomt-operator/Chart.yaml)

.PHONY: images
images: ## Build the operator and verifier images (needs a Docker engine).
	docker build --build-arg PROGRAM=manager -t $(IMAGE_REGISTRY)/iomt-operator:$(IMAGE_TAG) .
	docker build --build-arg PROGRAM=verifier -t $(IMAGE_REGISTRY)/iomt-verifier:$(IMAGE_TAG) .

.PHONY: helm
helm: $(HELM_BIN) ## Build the pinned Helm from its Go module into bin/ (once).

$(HELM_BIN): hack/tools/helm/go.mod
	cd hack/tools/helm && CGO_ENABLED=0 go build -trimpath \
	  -ldflags '-X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)' \
	  -o $(HELM_BIN) helm.sh/helm/v4/cmd/helm
	ln -sf $(notdir $(HELM_BIN)) $(BIN)/helm

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)
