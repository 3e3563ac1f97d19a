#!/usr/bin/env bash
# Deploy Jangar: push the Convex functions and schema first, then roll the worker out.
#
# Order matters, as in the seed's deploy step: a new worker may call a Convex function or write
# a field that only the new convex/ code has, so Convex is deployed before any pod restarts.
#
# Usage: deploy/deploy.sh [--dry-run] [--help]
#
# Convex target (one of):
#   CONVEX_DEPLOY_KEY                         Convex cloud (deploy key of the prod deployment)
#   CONVEX_SELF_HOSTED_URL + CONVEX_SELF_HOSTED_ADMIN_KEY (or CONVEX_ADMIN_KEY)  self-hosted
# Optional:
#   JANGAR_IMAGE      worker image to run, REPO:TAG or REPO@sha256:DIGEST (never :latest);
#                     default: the tag pinned in deploy/k8s/kustomization.yaml
#   JANGAR_NAMESPACE  Kubernetes namespace (default: the one in deploy/k8s/kustomization.yaml)
#   ROLLOUT_TIMEOUT   how long to wait for the rollout (default 600s)
#   KUBECTL           kubectl binary (default kubectl);  NPX  npx binary (default npx)
#
# --dry-run prints every command it would run, in order, and runs none of them.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

fail() {
  echo "deploy.sh: error: $*" >&2
  exit 2
}

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) fail "unknown argument '$arg' (try --help)" ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_DIR="deploy/k8s"
KUBECTL="${KUBECTL:-kubectl}"
NPX="${NPX:-npx}"
DEPLOYMENT="jangar-worker"
SECRET="jangar-worker-secrets"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-600s}"
cd "$ROOT"

# --- Inputs: check them all before touching anything -----------------------------------------
if [[ -n "${CONVEX_DEPLOY_KEY:-}" ]]; then
  CONVEX_MODE="cloud"
elif [[ -n "${CONVEX_SELF_HOSTED_URL:-}" ]]; then
  CONVEX_MODE="self-hosted"
  export CONVEX_SELF_HOSTED_ADMIN_KEY="${CONVEX_SELF_HOSTED_ADMIN_KEY:-${CONVEX_ADMIN_KEY:-}}"
  [[ -n "$CONVEX_SELF_HOSTED_ADMIN_KEY" ]] ||
    fail "CONVEX_SELF_HOSTED_URL is set but CONVEX_SELF_HOSTED_ADMIN_KEY (or CONVEX_ADMIN_KEY) is missing"
else
  fail "no Convex target: set CONVEX_DEPLOY_KEY (Convex cloud), or CONVEX_SELF_HOSTED_URL and CONVEX_SELF_HOSTED_ADMIN_KEY (self-hosted)"
fi

NAMESPACE="${JANGAR_NAMESPACE:-$(awk '$1 == "namespace:" { print $2; exit }' "$K8S_DIR/kustomization.yaml")}"
[[ -n "$NAMESPACE" ]] || fail "JANGAR_NAMESPACE is not set and $K8S_DIR/kustomization.yaml names no namespace"

IMAGE="${JANGAR_IMAGE:-}"
IMAGE_NAME="" IMAGE_TAG="" IMAGE_DIGEST=""
if [[ -n "$IMAGE" ]]; then
  if [[ "$IMAGE" == *@sha256:* ]]; then
    IMAGE_NAME="${IMAGE%@*}" IMAGE_DIGEST="${IMAGE#*@}"
  elif [[ "${IMAGE##*/}" == *:* ]]; then
    IMAGE_NAME="${IMAGE%:*}" IMAGE_TAG="${IMAGE##*:}"
  fi
  [[ -n "$IMAGE_TAG$IMAGE_DIGEST" ]] || fail "JANGAR_IMAGE '$IMAGE' has no tag or digest: pin one (REPO:TAG or REPO@sha256:...)"
  [[ "$IMAGE_TAG" != "latest" ]] || fail "JANGAR_IMAGE must not use the moving tag ':latest'"
fi

if ((!DRY_RUN)); then
  command -v "$KUBECTL" >/dev/null 2>&1 || fail "'$KUBECTL' not found (set KUBECTL or install kubectl)"
  command -v "$NPX" >/dev/null 2>&1 || fail "'$NPX' not found (install Node.js >= 20)"
fi

# --- Helpers -------------------------------------------------------------------------------------
# Print a command (secrets never appear on a command line here, only in the environment), and
# run it unless --dry-run.
run() {
  echo "+ $*"
  if ((!DRY_RUN)); then "$@"; fi
}

step() { echo "==> $*"; }

if ((DRY_RUN)); then echo "dry run: printing the commands, running none of them"; fi

# --- 1. Convex: functions, schema and indexes ------------------------------------------------
step "convex deploy ($CONVEX_MODE)"
if [[ ! -d node_modules/convex ]]; then
  run npm ci --no-audit --no-fund --loglevel=error
fi
# The CLI refuses CONVEX_DEPLOYMENT next to a deploy key or self-hosted URL, and the worker's
# settings use that name for a URL, so keep it out of the CLI's environment.
run env -u CONVEX_DEPLOYMENT "$NPX" convex deploy

# --- 2. The worker -------------------------------------------------------------------------------
step "kubernetes: namespace $NAMESPACE"
run "$KUBECTL" -n "$NAMESPACE" get secret "$SECRET" -o name ||
  fail "Secret $SECRET is missing in namespace $NAMESPACE: create it first (see $K8S_DIR/secret.example.yaml)"

APPLY_DIR="$K8S_DIR"
if [[ -n "$IMAGE" ]]; then
  # A throw-away overlay next to deploy/k8s sets the image without editing tracked files.
  APPLY_DIR="$(mktemp -d "$ROOT/deploy/.overlay.XXXXXX")"
  trap 'rm -rf "$APPLY_DIR"' EXIT
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - ../k8s"
    echo "images:"
    echo "  - name: jangar-worker"
    echo "    newName: $IMAGE_NAME"
    if [[ -n "$IMAGE_DIGEST" ]]; then echo "    digest: $IMAGE_DIGEST"; else echo "    newTag: \"$IMAGE_TAG\""; fi
  } >"$APPLY_DIR/kustomization.yaml"
  APPLY_DIR="deploy/${APPLY_DIR##*/}"
  echo "    image: $IMAGE (overlay $APPLY_DIR/kustomization.yaml)"
  if ((DRY_RUN)); then sed 's/^/    | /' "$APPLY_DIR/kustomization.yaml"; fi
fi
run "$KUBECTL" apply -k "$APPLY_DIR"
run "$KUBECTL" -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
step "done"
