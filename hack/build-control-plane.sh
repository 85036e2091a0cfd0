#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from their Go modules into the
# layout envtest expects (bin/k8s/<version>-<os>-<arch>/), because release
# binaries cannot be downloaded here. Skips the build when the binaries are
# already there. The first build takes about ten minutes on two cores.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.17}

root=$(cd "$(dirname "$0")/.." && pwd)
dest="${root}/bin/k8s/${KUBE_VERSION}-$(go env GOOS)-$(go env GOARCH)"

# stamp marks binaries built by this recipe; older ones are rebuilt.
stamp="${dest}/.recipe-2"
if [[ -f "${stamp}" && -x "${dest}/kube-apiserver" && -x "${dest}/etcd" && -x "${dest}/kubectl" ]]; then
  echo "${dest}"
  exit 0
fi
mkdir -p "${dest}"

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

# kube-apiserver and kubectl: k8s.io/kubernetes requires its staging
# modules at v0.0.0 and replaces them with local folders that the module
# zip does not carry, so each one is pointed at its published release.
kmod=$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
{
  echo "module iomt-operator/controlplane"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes v${KUBE_VERSION}"
  echo
  grep -E '^[[:space:]]+k8s\.io/[^ ]+ v0\.0\.0([[:space:]]|$)' "${kmod}" | awk '{print $1}' | sort -u |
    while read -r m; do echo "replace ${m} => ${m} ${STAGING_VERSION}"; done
} > "${work}/go.mod"
cat > "${work}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
# The version a release build stamps in, so that clients (Helm's kubeVersion
# check among them) see the real server version.
minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
kver="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X ${pkg}.gitVersion=v${KUBE_VERSION} -X ${pkg}.gitMajor=${KUBE_VERSION%%.*}"
  kver+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
done

if [[ ! -f "${stamp}" || ! -x "${dest}/kube-apiserver" || ! -x "${dest}/kubectl" ]]; then (
  cd "${work}"
  GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes@v${KUBE_VERSION}"
  echo "building kube-apiserver ${KUBE_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="${kver}" \
    -o "${dest}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  echo "building kubectl ${KUBE_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="${kver}" \
    -o "${dest}/kubectl" k8s.io/kubernetes/cmd/kubectl
); fi

# etcd: the server module's root is its main package. Its go.mod replaces
# sibling modules with local folders, so it is built from a small module of
# our own that requires it, which takes the published siblings instead.
if [[ ! -x "${dest}/etcd" ]]; then
  mkdir -p "${work}/etcd"
  cat > "${work}/etcd/go.mod" <<MOD
module iomt-operator/etcd

go 1.26

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
MOD
  cat > "${work}/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (
    cd "${work}/etcd"
    echo "building etcd ${ETCD_VERSION}" >&2
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' \
      -o "${dest}/etcd" go.etcd.io/etcd/server/v3
  )
fi

test -x "${dest}/etcd"
touch "${stamp}"
echo "${dest}"
