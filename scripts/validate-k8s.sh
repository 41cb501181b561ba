#!/usr/bin/env bash
# Renders the kustomize base and every overlay and validates the output against the Kubernetes
# schemas (kubernetes-validate, strict) and yamllint, and every pod it runs against the restricted
# Pod Security Standard and our own rules (scripts/pod-security.py). Tools go into a virtual
# environment under the target directory, created on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.32.0}
venv="${CARGO_TARGET_DIR:-target}/k8s-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/yamllint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' 'yamllint==1.37.1'
fi

"$venv/bin/yamllint" --strict -c deploy/k8s/.yamllint deploy/k8s

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" >"$rendered/$name.yaml"
  "$venv/bin/yamllint" --strict -c deploy/k8s/.yamllint "$rendered/$name.yaml"
  "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "$rendered/$name.yaml"
  # An overlay is what gets applied: it brings the namespace that enforces the profile.
  namespace=()
  [ "$name" = base ] || namespace=(--require-namespace)
  "$venv/bin/python" scripts/pod-security.py "${namespace[@]}" "$rendered/$name.yaml"
  echo "ok: $dir ($(grep -c '^kind:' "$rendered/$name.yaml") objects)"
done
