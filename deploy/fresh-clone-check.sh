#!/usr/bin/env bash
# A newcomer's first minutes: clone the repo into a temporary directory, run the README's first
# command (create a venv, install, start the service on the bundled model) in the background,
# wait for /readyz, classify one sentence with curl, stop the service.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n "$server" ]]; then kill -TERM -- "-$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone --quiet "$repo" "$work/sitrep"
cd "$work/sitrep"
command=$(sed -n '/<!-- serve-command -->/,/<!-- \/serve-command -->/p' README.md | grep -v -e '^<!--' -e '^```')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "running the README's first command on port $port: $command"
# setsid: the command and everything it starts form one process group, stopped together.
SITREP_PORT=$port setsid bash -c "$command" > "$work/serve.log" 2>&1 &
server=$!

for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/serve.log"; echo "service exited" >&2; exit 1; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/readyz"; echo
answer=$(curl -fsS -X POST "http://127.0.0.1:$port/v1/classify" -H 'Content-Type: application/json' \
  -d '{"sentences": ["Two soldiers were killed when their armoured vehicle hit a mine."]}')
echo "$answer"
grep -Eq '"label": ?"military_loss"' <<< "$answer" || { echo "unexpected answer" >&2; exit 1; }
echo "fresh clone OK: installed, served the bundled model, classified a sentence"
