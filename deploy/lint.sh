#!/usr/bin/env bash
# Lint deploy/: the Dockerfile (hadolint, with ShellCheck on its RUN lines), every YAML file
# (yamllint), the compose file against the Compose Specification's schema (check-jsonschema),
# the Kubernetes manifests against the API's schemas (kubernetes-validate, strict: an unknown
# or misspelt field fails), the kustomization as kubectl renders it (when kubectl is here),
# and the HAProxy config with HAProxy itself (when haproxy is here). All offline: the
# checkers and their schemas come from PyPI packages in the dev extra. Exits non-zero on any
# finding.
#
#   bash deploy/lint.sh            # from anywhere; BIN=DIR to use other tool binaries
set -uo pipefail

DEPLOY="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$DEPLOY")"
BIN="${BIN:-$ROOT/.venv/bin}"
# the Kubernetes versions the manifests must be valid for, the oldest and newest supported
# (kubernetes-validate bundles the schemas of 1.25 to 1.37)
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
HAPROXY="${HAPROXY:-/usr/sbin/haproxy}"

failed=()

check() {  # check NAME COMMAND...: run one checker, remember it when it fails
    local name="$1"
    shift
    echo "--- $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

for tool in hadolint yamllint check-jsonschema kubernetes-validate; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "deploy/lint.sh: $BIN/$tool is missing; install the dev extra (make install)" >&2
        exit 2
    fi
done

check "hadolint deploy/Dockerfile" "$BIN/hadolint" --failure-threshold style "$DEPLOY/Dockerfile"

check "yamllint deploy/" "$BIN/yamllint" --strict -c "$DEPLOY/yamllint.yaml" "$DEPLOY"

check "compose-spec deploy/compose.yaml" \
    "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec "$DEPLOY/compose.yaml"

# every manifest, the ones kustomization.yaml leaves out (secret.example.yaml, redis.yaml) too;
# kustomization.yaml itself is kustomize's file, not an API object
manifests=()
for f in "$DEPLOY"/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
for version in $K8S_VERSIONS; do
    check "kubernetes-validate deploy/k8s (Kubernetes $version)" \
        "$BIN/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done

if command -v kubectl >/dev/null 2>&1; then
    rendered="$(mktemp --suffix=.yaml)"
    trap 'rm -f "$rendered"' EXIT
    render_and_validate() {  # render_and_validate DIR: a kustomization, rendered, then validated
        local version
        kubectl kustomize "$1" >"$rendered" || return 1
        for version in $K8S_VERSIONS; do
            "$BIN/kubernetes-validate" --strict --quiet -k "$version" "$rendered" || return 1
        done
    }
    check "kubectl kustomize deploy/k8s, validated" render_and_validate "$DEPLOY/k8s"
    # the overlay's patches exist only once rendered: nothing else checks them
    check "kubectl kustomize deploy/k8s-several-nodes, validated" render_and_validate "$DEPLOY/k8s-several-nodes"
else
    echo "--- kubectl kustomize deploy/k8s and deploy/k8s-several-nodes: skipped (no kubectl on PATH;"
    echo "    the base's files were validated one by one, the overlay's patches were not)"
fi

if [ -x "$HAPROXY" ]; then
    # The replicas' names resolve only inside compose's network: check against addresses
    # that resolve here. -dW: any warning is an error.
    check "haproxy -c deploy/haproxy/haproxy.cfg" \
        env CSBOT_LB_BIND=127.0.0.1:18080 CSBOT_LB_DNS=127.0.0.1:53 CSBOT_APP_ADDR=127.0.0.1:8000 \
        "$HAPROXY" -dW -c -f "$DEPLOY/haproxy/haproxy.cfg"
else
    echo "--- haproxy -c deploy/haproxy/haproxy.cfg: skipped ($HAPROXY not found; apt-get install haproxy)"
fi

if [ ${#failed[@]} -gt 0 ]; then
    printf 'deploy/lint.sh: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "deploy/lint.sh: all checks passed"
