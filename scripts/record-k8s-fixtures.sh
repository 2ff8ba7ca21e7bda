#!/usr/bin/env bash
# Records the API server's answers that the Kubernetes mock tests replay
# (src/platform/kubernetes/tests/recorded/), from a real cluster with the
# shop deployed:
#
#   scripts/cluster.sh up && scripts/cluster.sh shop-image "$CARGO_TARGET_DIR/debug"
#   gameday up --scenario scenarios/kubernetes-smoke.yaml
#   scripts/record-k8s-fixtures.sh [namespace]      # default gameday-shop
#
# What it records, each request as gameday sends it:
#   apply-namespace.json        server-side apply of the Namespace
#                               (fieldManager=gameday, force=true)
#   apply-deployment-cart.json  server-side apply of Deployment cart with no
#                               spec.replicas (an HPA manages it), after its
#                               scale was raised to 3 as the HPA would: the
#                               answer must keep 3
#   scale-cart.json             GET of Deployment cart's scale subresource
#   delete-pod-grace-1.json     DELETE mariadb-0 with gracePeriodSeconds 1
#                               (db-failover)
#   delete-pod-own-grace.json   DELETE a cart pod with its own grace period
#                               (kill-pod graceful, restart-cache)
# It changes the shop (a cart pod and mariadb-0 restart, cart runs 3): run
# it on a shop deployed for the purpose, and `gameday down` after.
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${1:-gameday-shop}
out=src/platform/kubernetes/tests/recorded
port=18001
kubectl version -o json | python3 -c 'import json,sys; print("server:", json.load(sys.stdin)["serverVersion"]["gitVersion"])'

kubectl proxy --port=$port >/dev/null 2>&1 &
proxy=$!
trap 'kill $proxy 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$port/version" && break; sleep 0.2; done
api="http://127.0.0.1:$port"
# Pretty-printed, keys sorted, as the other recordings.
save() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), indent=2, sort_keys=True))' >"$out/$1"; echo "recorded $out/$1"; }
apply() { # path, JSON body
  curl -fsS -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
    "$api$1?fieldManager=gameday&force=true" --data-binary "$2"
}

apply "/api/v1/namespaces/$ns" \
  "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\",\"labels\":{\"app.kubernetes.io/managed-by\":\"gameday\"}}}" |
  save apply-namespace.json

deployments="$api/apis/apps/v1/namespaces/$ns/deployments"
curl -fsS -X PATCH -H 'Content-Type: application/merge-patch+json' \
  "$deployments/cart/scale" --data-binary '{"spec":{"replicas":3}}' >/dev/null
image=$(kubectl -n "$ns" get deployment cart -o jsonpath='{.spec.template.spec.containers[0].image}')
body=$(NS=$ns IMAGE=$image python3 - <<'PY'
import json, os, yaml
docs = yaml.safe_load_all(open("reference-app/k8s/services.yaml"))
cart = next(d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "cart")
cart["metadata"]["namespace"] = os.environ["NS"]
cart["spec"]["template"]["spec"]["containers"][0]["image"] = os.environ["IMAGE"]
cart["spec"].pop("replicas", None)
print(json.dumps(cart))
PY
)
apply "/apis/apps/v1/namespaces/$ns/deployments/cart" "$body" | save apply-deployment-cart.json
curl -fsS "$deployments/cart/scale" | save scale-cart.json

pods="$api/api/v1/namespaces/$ns/pods"
curl -fsS -X DELETE -H 'Content-Type: application/json' "$pods/mariadb-0" \
  --data-binary '{"gracePeriodSeconds":1}' | save delete-pod-grace-1.json
cart_pod=$(kubectl -n "$ns" get pods -l app.kubernetes.io/name=cart -o jsonpath='{.items[0].metadata.name}')
curl -fsS -X DELETE -H 'Content-Type: application/json' "$pods/$cart_pod" \
  --data-binary '{}' | save delete-pod-own-grace.json
