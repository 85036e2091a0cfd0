#!/usr/bin/env bash
# Writes the kustomize bundle's rbac, manager and webhook folders from the
# Helm chart rendered with its default values, so that `helm install` and
# `kubectl apply -k config/default` install the same objects. The CRDs come
# from controller-gen (config/crd/bases) for both. Helm's own labels are
# replaced by kustomize's; everything else is the chart's output, comments
# included.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
helm=${HELM:-${root}/bin/helm}
namespace=${NAMESPACE:-iomt-system}

rendered=$(mktemp)
trap 'rm -f "${rendered}"' EXIT
"${helm}" template iomt-operator "${root}/charts/iomt-operator" \
  --namespace "${namespace}" --set crds.install=false >"${rendered}"

for dir in rbac manager webhook; do
  mkdir -p "${root}/config/${dir}"
  rm -f "${root}/config/${dir}"/*.yaml
done

# Each document starts with "---" and "# Source: iomt-operator/templates/<dir>/<file>";
# Helm orders documents by kind, so one file's documents need not be adjacent.
awk -v root="${root}/config" '
  /^---$/ { next }
  /^# Source: iomt-operator\/templates\// {
    path = $3; sub(/^iomt-operator\/templates\//, "", path)
    out = root "/" path
    if (out in seen) { print "---" > out }
    else { print "# Written by hack/render-config.sh from charts/iomt-operator; do not edit." > out }
    seen[out] = 1; next
  }
  /^ *helm\.sh\/chart:/ { next }
  { sub(/app\.kubernetes\.io\/managed-by: Helm/, "app.kubernetes.io/managed-by: kustomize"); print > out }
' "${rendered}"

for dir in rbac manager webhook; do
  {
    echo "# Written by hack/render-config.sh from charts/iomt-operator; do not edit."
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    for f in "${root}/config/${dir}"/*.yaml; do
      [[ $(basename "$f") == kustomization.yaml ]] && continue
      echo "- $(basename "$f")"
    done
  } >"${root}/config/${dir}/kustomization.yaml.new"
  mv "${root}/config/${dir}/kustomization.yaml.new" "${root}/config/${dir}/kustomization.yaml"
done
