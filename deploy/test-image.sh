#!/usr/bin/env bash
# Build the sitrep container image and run it for real, without a Docker daemon.
#
#   deploy/test-image.sh            # from anywhere; needs root (buildah, chroot)
#
# 1. A Debian bookworm root filesystem with Python 3.11 is made with
#    debootstrap, from the Debian mirror this machine's apt already uses, and
#    cached as a tarball (rebuilt only when missing or when its recipe changes).
# 2. That tarball is imported with buildah as localhost/sitrep-base:bookworm-py311,
#    a local stand-in for python:3.11-slim (Docker Hub is not reachable here).
# 3. The repository's Dockerfile is built with `buildah bud --isolation chroot`.
# 4. The image's own CMD is started with `buildah run --isolation chroot`, which
#    shares the host network, bound to a free port on 127.0.0.1. The script waits
#    for /readyz, classifies a sentence, checks the process runs as uid 10001,
#    stops it with SIGTERM (the image's STOPSIGNAL) and checks it exits cleanly.
#
# Exit status is non-zero on any failure, with a message saying which check
# failed. Knobs (environment):
#   PROFILE=fast|accurate       build profile (default fast)
#   SITREP_IMAGE=ref            tag for the built image (default localhost/sitrep:test)
#   READY_TIMEOUT=seconds       how long to wait for /readyz (default 180)
#   STOP_TIMEOUT=seconds        how long SIGTERM may take (default 30)
#   SITREP_DEBIAN_MIRROR=url    override the mirror read from apt's sources
#   SITREP_REBUILD_BASE=1       rebuild the cached rootfs tarball
#   SITREP_NO_CACHE=1           build the image without buildah's layer cache
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${PROFILE:-fast}"
IMAGE="${SITREP_IMAGE:-localhost/sitrep:test}"
BASE_IMAGE="localhost/sitrep-base:bookworm-py311"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
STOP_TIMEOUT="${STOP_TIMEOUT:-30}"
SUITE=bookworm
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sitrep"
EXPECTED_UID=10001
SENTENCE="Two soldiers were killed when their armoured vehicle hit a mine."
EXPECTED_LABEL=military_loss

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sitrep-image-test.XXXXXX")"
CONTAINER=""
RUN_PID=""
RUN_PGID=""
ROOTFS_TMP=""

# ---------------------------------------------------------------- helpers

log() { printf '[test-image] %s\n' "$*"; }
fail() {
    printf '[test-image] FAIL: %s\n' "$*" >&2
    exit 1
}

# Timings: every phase is recorded and printed at the end, also on failure.
declare -a TIMINGS=()
T_START=$(date +%s.%N)
phase_start() {
    PHASE_NAME="$1"
    PHASE_T0=$(date +%s.%N)
    log "$1 ..."
}
phase_end() {
    local took
    took=$(awk -v a="$PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    TIMINGS+=("$(printf '%-52s %7ss  %s' "$PHASE_NAME" "$took" "${1:-}")")
}
print_timings() {
    local total
    total=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    log "timings:"
    local line
    for line in "${TIMINGS[@]}"; do printf '    %s\n' "$line"; done
    printf '    %-52s %7ss\n' "total" "$total"
}

# Show the end of a log file when something failed, so CI output says why.
show_log() {
    if [[ -s "$1" ]]; then
        printf -- '----- last lines of %s -----\n' "$1" >&2
        tail -n "${2:-40}" "$1" >&2
        printf -- '-----\n' >&2
    fi
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$RUN_PGID" ]]; then
        # We are failing with the service possibly still up: kill its whole
        # process group. The group, not the tree: when buildah dies first,
        # uvicorn's workers are re-parented to init and leave the tree.
        kill -KILL -- "-$RUN_PGID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    if [[ -n "$CONTAINER" ]]; then
        buildah rm "$CONTAINER" >/dev/null 2>&1
    fi
    if [[ -n "$ROOTFS_TMP" && -d "$ROOTFS_TMP" ]]; then
        umount_rootfs_mounts "$ROOTFS_TMP"
        rm -rf --one-file-system "$ROOTFS_TMP"
    fi
    if ((rc != 0)); then
        show_log "$WORK_DIR/run.log"
        log "logs kept in $WORK_DIR"
    else
        rm -rf "$WORK_DIR"
    fi
    if ((${#TIMINGS[@]} > 0)); then print_timings; fi
    if ((rc == 0)); then log "PASS"; else log "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Descendant pids of $1 (not including $1), from /proc: works without procps.
descendants() {
    local parent=$1 pid ppid stat
    for stat in /proc/[0-9]*/stat; do
        pid=${stat#/proc/}
        pid=${pid%/stat}
        # Field 4 of /proc/PID/stat is the parent pid; the command name in
        # field 2 may contain spaces, so split after its closing parenthesis.
        ppid=$(sed -E 's/^.*\) [A-Za-z] ([0-9]+) .*/\1/' "$stat" 2>/dev/null) || continue
        if [[ "$ppid" == "$parent" ]]; then
            echo "$pid"
            descendants "$pid"
        fi
    done
}

# Process group id: field 5 of /proc/PID/stat.
pgid_of() { sed -E 's/^.*\) [A-Za-z] [0-9]+ ([0-9]+) .*/\1/' "/proc/$1/stat" 2>/dev/null || true; }
cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }
# Real, effective, saved and filesystem uid of a process.
uids_of() { awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$1/status" 2>/dev/null || true; }

# HTTP against the service, with the host's Python (no curl needed).
# Prints "STATUS BODY"; never fails, so callers can poll.
http() {
    local method=$1 url=$2 body=${3:-}
    python3 - "$method" "$url" "$body" <<'PY'
import sys, urllib.error, urllib.request
method, url, body = sys.argv[1:4]
req = urllib.request.Request(url, method=method, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError as e:
    print(0, e)
PY
}

# ---------------------------------------------------------------- preflight

phase_start "preflight (root, tools)"
((EUID == 0)) || fail "run as root: debootstrap, chroot and rootful buildah need it"
[[ -f "$REPO_ROOT/Dockerfile" ]] || fail "no Dockerfile in $REPO_ROOT"

# Install what is missing, once, quietly. apt-get update only when needed.
need_pkgs=()
command -v buildah >/dev/null || need_pkgs+=(buildah)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v python3 >/dev/null || need_pkgs+=(python3)
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need_pkgs+=(debian-archive-keyring)
if ((${#need_pkgs[@]} > 0)); then
    log "installing ${need_pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$WORK_DIR/apt.log" 2>&1 || { show_log "$WORK_DIR/apt.log"; fail "apt-get update"; }
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >>"$WORK_DIR/apt.log" 2>&1 \
        || { show_log "$WORK_DIR/apt.log"; fail "apt-get install ${need_pkgs[*]}"; }
fi
phase_end "${need_pkgs[*]:+installed ${need_pkgs[*]}}"

# ---------------------------------------------------------------- base rootfs

# The first URI that serves the plain suite (not -updates/-security) in apt's
# sources, in either the deb822 (*.sources) or the one-line (*.list) format.
find_mirror() {
    local suite=$1
    python3 - "$suite" <<'PY'
import glob, re, sys
suite = sys.argv[1]
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
deb822 = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
for path in deb822:
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []) \
                and fields.get("enabled", ["yes"])[0] != "no":
            print(fields["uris"][0]); sys.exit(0)
for path in files:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        parts = re.sub(r"\[[^\]]*\]", "", line.split("#")[0]).split()
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
            print(parts[1]); sys.exit(0)
sys.exit(1)
PY
}

# Host CA certificates added locally (not from Debian's ca-certificates). The
# host's pip trusts them (pip.conf names the system bundle), and PyPI may only
# be reachable through a TLS proxy they sign for, so the rootfs gets them too.
local_cas() { find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort; }

# The host's package index, so pip inside the build reaches the same one. Only
# http(s) indexes are carried over: file:// indexes and find-links are
# directories on this host that do not exist inside the image.
host_pip_conf() {
    local index extra
    index="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
    extra="${PIP_EXTRA_INDEX_URL:-$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)}"
    echo "[global]"
    [[ "$index" == http* ]] && echo "index-url = $index"
    extra="$(tr ' ' '\n' <<<"$extra" | grep '^http' | tr '\n' ' ' || true)"
    [[ -n "${extra// /}" ]] && echo "extra-index-url = ${extra% }"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    echo "disable-pip-version-check = true"
    echo "timeout = 120"
}

umount_rootfs_mounts() {
    local root=$1 m
    for m in proc dev/pts dev sys; do
        if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m" || true; fi
    done
}

# The recipe: bookworm minbase + Python 3.11 + a virtualenv at /opt/python that
# plays the part of the official image's /usr/local python: `python` and `pip`
# first on PATH, and pip allowed to install (Debian's own python3 refuses, PEP 668).
build_rootfs() {
    local root=$1 mirror=$2 security_mirror=$3
    debootstrap --variant=minbase --components=main \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$root" "$mirror" >"$WORK_DIR/debootstrap.log" 2>&1 \
        || { show_log "$WORK_DIR/debootstrap.log"; fail "debootstrap from $mirror"; }

    # apt sources as on the host, so derived images can apt-get install.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

    local ca
    for ca in $(local_cas); do cp "$ca" "$root/usr/local/share/ca-certificates/"; done
    host_pip_conf >"$root/etc/pip.conf"

    # Mount /proc and /dev for the chrooted commands, unmounted again below.
    mount -t proc proc "$root/proc"
    mount --bind /dev "$root/dev"
    chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1
    chroot "$root" /usr/bin/python3 -m venv /opt/python
    umount_rootfs_mounts "$root"

    # Slim it down like the -slim images: no apt lists, caches, docs or man pages.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.cache
    find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    find "$root" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
    # Per-machine identity must not be baked into an image.
    : >"$root/etc/machine-id"
    rm -f "$root/etc/hostname"
}

phase_start "base rootfs (debootstrap $SUITE)"
MIRROR="${SITREP_DEBIAN_MIRROR:-$(find_mirror "$SUITE" || echo http://deb.debian.org/debian)}"
SECURITY_MIRROR="$(find_mirror "$SUITE-security" || echo http://deb.debian.org/debian-security)"
# The cache key covers the recipe itself, the mirror and the local CAs and pip
# config it copies in, so editing any of them rebuilds the tarball.
RECIPE_KEY=$(
    {
        declare -f build_rootfs host_pip_conf local_cas
        echo "$SUITE $MIRROR $SECURITY_MIRROR"
        host_pip_conf
        local_cas | xargs -r cat
    } | sha256sum | cut -c1-12
)
ROOTFS_TAR="$CACHE_DIR/rootfs-$SUITE-py311-$RECIPE_KEY.tar"
if [[ -f "$ROOTFS_TAR" && -z "${SITREP_REBUILD_BASE:-}" ]]; then
    phase_end "cached: $ROOTFS_TAR"
else
    log "mirror $MIRROR (from apt sources); this takes a few minutes once"
    mkdir -p "$CACHE_DIR"
    # Built next to the cache so the final mv is atomic: an interrupted run
    # never leaves a half-made tarball that a later run would trust.
    ROOTFS_TMP="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    build_rootfs "$ROOTFS_TMP/root" "$MIRROR" "$SECURITY_MIRROR"
    tar --numeric-owner --xattrs -C "$ROOTFS_TMP/root" -cf "$ROOTFS_TMP/rootfs.tar" .
    mv "$ROOTFS_TMP/rootfs.tar" "$ROOTFS_TAR"
    rm -rf --one-file-system "$ROOTFS_TMP"
    ROOTFS_TMP=""
    # Older tarballs from previous recipes are dead weight.
    find "$CACHE_DIR" -maxdepth 1 -name "rootfs-$SUITE-py311-*.tar" ! -path "$ROOTFS_TAR" -delete
    phase_end "built: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
fi

# ---------------------------------------------------------------- base image

phase_start "base image ($BASE_IMAGE)"
# Re-import only when the image is missing or was made from another tarball.
have_key=$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.sitrep.rootfs-key"}}' \
    "$BASE_IMAGE" 2>/dev/null || true)
if [[ "$have_key" == "$RECIPE_KEY" ]]; then
    phase_end "cached"
else
    ctr=$(buildah from --pull=never scratch)
    # Extract through a mount rather than `buildah add`, which would not keep
    # the archive's owners and modes exactly.
    mnt=$(buildah mount "$ctr")
    tar --numeric-owner --xattrs -xpf "$ROOTFS_TAR" -C "$mnt"
    buildah umount "$ctr" >/dev/null
    buildah config \
        --env PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --cmd python3 \
        --label org.sitrep.rootfs-key="$RECIPE_KEY" \
        --label org.opencontainers.image.description="Debian $SUITE + Python 3.11, local stand-in for python:3.11-slim" \
        "$ctr"
    buildah commit --rm --quiet "$ctr" "$BASE_IMAGE" >/dev/null
    phase_end "imported"
fi

# ---------------------------------------------------------------- image build

phase_start "image build ($IMAGE, PROFILE=$PROFILE)"
# --format docker: OCI image configs have no HEALTHCHECK, buildah would drop it.
# --layers: keep intermediate layers, so the dependency layer is reused.
build_args=(
    --isolation chroot --format docker --layers --pull=never
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "PROFILE=$PROFILE"
    -f "$REPO_ROOT/Dockerfile" -t "$IMAGE"
)
[[ -n "${SITREP_NO_CACHE:-}" ]] && build_args+=(--no-cache)
log "build log: $WORK_DIR/build.log"
if ! buildah bud "${build_args[@]}" "$REPO_ROOT" >"$WORK_DIR/build.log" 2>&1; then
    show_log "$WORK_DIR/build.log" 60
    fail "buildah bud failed"
fi
cached_steps=$(grep -c -- '--> Using cache' "$WORK_DIR/build.log" || true)
IMAGE_SIZE=$(buildah images --format '{{.Size}}' "$IMAGE" | head -n1)
phase_end "size $IMAGE_SIZE, $cached_steps steps from cache"

# ---------------------------------------------------------------- image config

phase_start "image config"
# buildah 1.28's --format templates have no `json`, so query the JSON with Python.
buildah inspect --type image "$IMAGE" >"$WORK_DIR/inspect.json"
inspect() {
    python3 - "$WORK_DIR/inspect.json" "$1" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = (value or {}).get(key)
print(value if isinstance(value, str) else json.dumps(value))
PY
}
user=$(inspect Docker.config.User)
[[ "$user" == "$EXPECTED_UID" || "$user" == "$EXPECTED_UID:"* || "$user" == sitrep* ]] \
    || fail "image User is '$user', expected sitrep/$EXPECTED_UID"
stop_signal=$(inspect Docker.config.StopSignal)
[[ "$stop_signal" == SIGTERM ]] || fail "image StopSignal is '$stop_signal', expected SIGTERM"
healthcheck=$(inspect Docker.config.Healthcheck.Test)
[[ "$healthcheck" == *readyz* ]] || fail "image has no HEALTHCHECK on /readyz (got '$healthcheck')"
cmd_json=$(inspect Docker.config.Cmd)
[[ "$cmd_json" == *sitrep*serve* ]] || fail "image CMD is $cmd_json, expected sitrep serve"
inspect Docker.config.Env | grep -q '"SITREP_WORKERS=2"' \
    || fail "image does not default SITREP_WORKERS=2"
# The runtime stage must not carry the build stage's tools.
probe=$(buildah from --pull=never "$IMAGE")
# shellcheck disable=SC2016  # $t is expanded by the shell inside the image
found_tools=$(buildah run --isolation chroot "$probe" -- sh -c 'for t in gcc cc make git; do command -v "$t" || true; done' 2>&1) \
    || { buildah rm "$probe" >/dev/null; fail "could not run a shell in the image: $found_tools"; }
buildah rm "$probe" >/dev/null
[[ -z "$found_tools" ]] || fail "runtime image contains build tools: $found_tools"
phase_end "User=$user StopSignal=$stop_signal CMD=$cmd_json"

# ---------------------------------------------------------------- run

phase_start "start and wait for /readyz"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CONTAINER=$(buildah from --pull=never "$IMAGE")
mapfile -t cmd < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$cmd_json")
# chroot isolation shares the host's network namespace, so bind loopback only:
# the image's SITREP_HOST=0.0.0.0 would listen on every interface of this host.
# buildah run applies the image's User, Env and WorkingDir, like a runtime would.
# setsid: a process group of its own, so cleanup can kill everything it started.
setsid --wait buildah run --isolation chroot \
    --env SITREP_HOST=127.0.0.1 --env "SITREP_PORT=$PORT" \
    "$CONTAINER" -- "${cmd[@]}" </dev/null >"$WORK_DIR/run.log" 2>&1 &
RUN_PID=$!
# Without job control a background job is no group leader, so setsid does not
# fork and the new group's id is the job's pid. Wait for setsid to have run
# (the job starts as a copy of this shell, in our group) rather than assume.
for _ in $(seq 50); do
    [[ "$(pgid_of "$RUN_PID")" == "$RUN_PID" ]] && RUN_PGID=$RUN_PID && break
    sleep 0.1
done
[[ -n "$RUN_PGID" ]] || fail "buildah run did not get a process group of its own"
BASE_URL="http://127.0.0.1:$PORT"
deadline=$((SECONDS + READY_TIMEOUT))
while :; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "the service exited before it was ready"
    read -r status body < <(http GET "$BASE_URL/readyz")
    [[ "$status" == 200 ]] && break
    ((SECONDS < deadline)) || fail "/readyz not 200 after ${READY_TIMEOUT}s (last answer: $status $body)"
    sleep 0.5
done
phase_end "ready on $BASE_URL"

phase_start "requests"
read -r status _ < <(http GET "$BASE_URL/healthz")
[[ "$status" == 200 ]] || fail "/healthz answered $status"
response=$(http POST "$BASE_URL/v1/classify" "{\"sentences\": [\"$SENTENCE\"]}")
status=${response%% *}
[[ "$status" == 200 ]] || fail "/v1/classify answered: $response"
python3 - "${response#* }" "$EXPECTED_LABEL" <<'PY' || fail "unexpected /v1/classify response: ${response#* }"
import json, sys
body, expected = json.loads(sys.argv[1]), sys.argv[2]
try:
    assert body["model"]["name"] == "sitrep", f"model {body['model']}"
    assert len(body["results"]) == 1, f"{len(body['results'])} results for 1 sentence"
    result = body["results"][0]
    assert result["label"] == expected, f"label {result['label']!r}, expected {expected!r}"
except (AssertionError, KeyError, TypeError) as error:
    sys.exit(f"    {type(error).__name__}: {error}")
print(f"    label={result['label']} confidence={result['confidence']:.3f} model={body['model']}")
PY
phase_end "label $EXPECTED_LABEL"

phase_start "HEALTHCHECK command"
# Run the image's own HEALTHCHECK command the way a runtime does: inside the
# container (same filesystem, user and environment), while the service is up.
mapfile -t hc_cmd < <(python3 -c '
import json, sys
test = json.loads(sys.argv[1])
print("\n".join(test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]))' "$healthcheck")
buildah run --isolation chroot --env "SITREP_PORT=$PORT" "$CONTAINER" -- "${hc_cmd[@]}" \
    </dev/null >"$WORK_DIR/healthcheck.log" 2>&1 \
    || { show_log "$WORK_DIR/healthcheck.log"; fail "the image's HEALTHCHECK command failed against a ready service"; }
phase_end "exit 0"

phase_start "process owner"
# Under buildah run the tree is: buildah (root) -> buildah-chroot-runtime (root,
# the runtime's part) -> buildah-chroot-exec -> sitrep serve -> uvicorn workers.
# Everything from buildah-chroot-exec down is the container's side and must
# run with uid 10001 as real, effective, saved and filesystem uid.
container_pids=()
MAIN_PID=""
for pid in $(descendants "$RUN_PID"); do
    cmdline=$(cmdline_of "$pid")
    [[ "$cmdline" == buildah-chroot-runtime* ]] && continue
    container_pids+=("$pid")
    uids=$(uids_of "$pid")
    [[ "$uids" == "$EXPECTED_UID $EXPECTED_UID $EXPECTED_UID $EXPECTED_UID" ]] \
        || fail "pid $pid ($cmdline) runs with uids '$uids', expected $EXPECTED_UID"
    # The image's CMD process (uvicorn's supervisor): the one that a runtime
    # would start as the container's first process and send STOPSIGNAL to.
    if [[ -z "$MAIN_PID" && "$cmdline" != buildah* && "$cmdline" == *"${cmd[0]}"* ]]; then
        MAIN_PID=$pid
    fi
done
[[ -n "$MAIN_PID" ]] || fail "no '${cmd[*]}' process found under buildah run (pid $RUN_PID)"
phase_end "${#container_pids[@]} processes, all uid $EXPECTED_UID; main pid $MAIN_PID: $(cmdline_of "$MAIN_PID")"

phase_start "SIGTERM and clean exit"
# A container runtime delivers STOPSIGNAL to the container's first process, so
# signal the supervisor. Not buildah itself: buildah run does not forward
# SIGTERM, it SIGKILLs its child and orphans the workers.
kill -TERM "$MAIN_PID"
deadline=$((SECONDS + STOP_TIMEOUT))
while kill -0 "$RUN_PID" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "still running ${STOP_TIMEOUT}s after SIGTERM"
    sleep 0.2
done
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=""
RUN_PGID=""
((rc == 0)) || fail "exit status $rc after SIGTERM, expected 0"
grep -q 'Finished server process' "$WORK_DIR/run.log" \
    || fail "no 'Finished server process' in the log: the shutdown was not graceful"
phase_end "exit 0"

buildah rm "$CONTAINER" >/dev/null
CONTAINER=""
log "image $IMAGE ($IMAGE_SIZE) passed"
