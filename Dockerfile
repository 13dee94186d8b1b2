ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
# sitrep service image.
#
#   docker build -t sitrep .                          # fast profile (default)
#   docker build --build-arg PROFILE=accurate -t sitrep:accurate .
#   buildah bud --format docker --layers -t sitrep .  # no daemon; see deploy/README.md
#
# BASE_IMAGE must be a Debian-like image with `python` (>= 3.11) and `pip` on
# PATH; deploy/test-image.sh builds a local stand-in for python:3.11-slim.
# Both stages use the same base, so the virtualenv built here runs there.

# fast installs `.`, accurate installs `.[accurate]`.
ARG PROFILE=fast

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1

# Bash with pipefail, so a failing command on the left of a pipe fails the step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

WORKDIR /src

# --- Dependencies: their own layer, rebuilt only when pyproject.toml changes.
# The runtime virtualenv lives at /opt/venv. Build tools (setuptools, wheel)
# go into the base interpreter instead, so they never reach the runtime stage.
COPY pyproject.toml ./
COPY deploy/docker/pyproject_deps.py /usr/local/share/sitrep/pyproject_deps.py
RUN case "${PROFILE}" in \
        fast) extra="" ;; \
        accurate) extra="accurate" ;; \
        *) echo "unknown PROFILE=${PROFILE} (expected fast or accurate)" >&2; exit 1 ;; \
    esac \
    && python /usr/local/share/sitrep/pyproject_deps.py pyproject.toml --build-system \
        > /tmp/build-requirements.txt \
    && python /usr/local/share/sitrep/pyproject_deps.py pyproject.toml --extra "${extra}" \
        > /tmp/requirements.txt \
    && python -m pip install --no-cache-dir -r /tmp/build-requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir -r /tmp/requirements.txt

# --- The project: code and the bundled model. Only this part reruns on a code change.
# README.m[d]: pyproject.toml names README.md as the long description; the glob
# lets the build go on (without one) in a checkout that lacks it.
COPY pyproject.toml README.m[d] ./
COPY service/ service/
COPY training/ training/
COPY models/ models/
# Build the wheel with the base interpreter's setuptools, then install it with
# --no-index: every dependency must already be in the layer above, so this
# step never reaches the network and proves the dependency layer is complete.
# setuptools and wheel came into the venv with ensurepip; nothing needs them at
# run time, and image scanners flag the old setuptools that ensurepip bundles.
# The test suites that numpy, scipy and scikit-learn ship inside
# their packages are never imported by the service: about 70 MB of the image.
RUN case "${PROFILE}" in accurate) extras="[accurate]" ;; *) extras="" ;; esac \
    && python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && wheel="$(find /tmp/wheels -name 'sitrep-*.whl' -print -quit)" \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index "${wheel}${extras}" \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --no-cache-dir --yes setuptools wheel \
    && find /opt/venv/lib -type d -name tests -path '*/site-packages/*' -prune -exec rm -rf {} + \
    && /opt/venv/bin/sitrep --help > /dev/null


FROM ${BASE_IMAGE} AS runtime
ARG PROFILE=fast

LABEL org.opencontainers.image.title="sitrep" \
      org.opencontainers.image.description="Sentence classifier for war and conflict news, served over HTTP" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.sitrep.profile="${PROFILE}"

# SITREP_HOST=0.0.0.0 so the port is reachable from outside the container;
# SITREP_WORKERS=2 uvicorn workers by default (one per core of a small node).
# The service reads SITREP_* itself, so `docker run -e SITREP_WORKERS=4` works.
ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SITREP_HOST=0.0.0.0 \
    SITREP_PORT=8000 \
    SITREP_WORKERS=2

# A fixed, unprivileged uid/gid so Kubernetes' runAsNonRoot/runAsUser can match it.
RUN groupadd --system --gid 10001 sitrep \
    && useradd --system --uid 10001 --gid sitrep --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sitrep

# Root-owned and read-only to the service user: the code and model cannot be
# modified by the process that serves them.
COPY --from=build /opt/venv /opt/venv

USER 10001:10001
# A root-owned working directory: `python -c` puts the cwd on sys.path.
WORKDIR /
EXPOSE 8000
STOPSIGNAL SIGTERM

# Ready means a verified model is loaded. Python's urllib, since slim images
# have no curl; a 503 raises, which makes the check fail.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SITREP_PORT', '8000'), timeout=4)"]

# Host, port and workers come from SITREP_* above.
CMD ["sitrep", "serve"]
