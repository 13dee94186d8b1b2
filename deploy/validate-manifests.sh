#!/usr/bin/env bash
# Validate the Kubernetes manifests against the Kubernetes JSON schemas, offline.
#
#   deploy/validate-manifests.sh                 # deploy/kubernetes
#   deploy/validate-manifests.sh path/to/dir-or-file ...
#
# The schemas come from the PyPI package kubernetes-validate, which ships them
# inside the package (about 100 MB, every Kubernetes minor from 1.25). It is
# installed once into a virtualenv under the user cache; after that nothing is
# downloaded. The validation itself runs in a network namespace with no network
# at all when possible (root + unshare), to prove it needs none.
#
# Environment:
#   K8S_VERSIONS="1.30.0 1.37.0"   Kubernetes versions to validate against: the
#                                  oldest we support and the newest the package knows
#   SITREP_VALIDATE_VENV=dir       where the virtualenv lives
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBERNETES_VALIDATE_VERSION=1.37.0   # pinned: its schema set is part of the result
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
VENV="${SITREP_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sitrep/validate-venv}"

if (($# == 0)); then set -- "$DEPLOY_DIR/kubernetes"; fi

# Install (or repair) the validator only when the pinned version is missing.
if ! "$VENV/bin/python" -c "import kubernetes_validate, sys; sys.exit(kubernetes_validate.__version__ != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
    echo "validate-manifests: installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

version_args=()
for version in $K8S_VERSIONS; do version_args+=(-k "$version"); done

cmd=("$VENV/bin/python" "$DEPLOY_DIR/validate_manifests.py" "${version_args[@]}" "$@")
# No network inside: if the validator tried to fetch a schema it would fail
# here rather than quietly depend on the internet.
if ((EUID == 0)) && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
    echo "validate-manifests: running without network (unshare --net)"
    exec unshare --net "${cmd[@]}"
fi
exec "${cmd[@]}"
