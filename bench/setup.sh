#!/usr/bin/env bash
# Install what the benchmark needs, each part in its own place (all git-ignored under bench/.peers/).
# A part that fails to install is recorded in bench/.peers/<name>.failed and the benchmark skips it.
set -u
cd "$(dirname "$0")/.."
PEERS=bench/.peers
# Python 3.13 for the peers' venvs: the one given by make, else the base interpreter of the project's venv
PY313=${PYTHON313:-}
if [ -z "$PY313" ] && [ -x .venv/bin/python ]; then
  PY313=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
fi
PY313=${PY313:-python3.13}
PORTKEY_VERSION=${PORTKEY_VERSION:-1.15.2}
# the issue's reference is 1.109; the package index here may lack that release's proxy extras, so fall back
LITELLM_VERSIONS=${LITELLM_VERSIONS:-1.109.3 1.108.6}
mkdir -p "$PEERS"

step() {  # step NAME COMMAND...: run, log to $PEERS/NAME.log, mark failure
  local name=$1; shift
  rm -f "$PEERS/$name.failed"
  if "$@" >"$PEERS/$name.log" 2>&1; then
    echo "bench setup: $name ok"
  else
    tail -n 5 "$PEERS/$name.log" >"$PEERS/$name.failed"
    echo "bench setup: $name FAILED (see $PEERS/$name.log); the benchmark will skip it"
  fi
}

install_wrk() {
  command -v wrk >/dev/null && return 0
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
  else
    echo "wrk is not installed and apt-get is not available"; return 1
  fi
}

install_portkey() {
  local entry=$PEERS/node_modules/@portkey-ai/gateway/build/start-server.js
  if [ -f "$entry" ] && grep -q "\"version\": \"$PORTKEY_VERSION\"" "$PEERS/node_modules/@portkey-ai/gateway/package.json"; then
    return 0
  fi
  command -v npm >/dev/null || { echo "npm not found"; return 1; }
  npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error "@portkey-ai/gateway@$PORTKEY_VERSION"
}

install_litellm() {
  local venv=$PEERS/litellm-venv v
  [ -x "$venv/bin/litellm" ] && [ -f "$venv/.bench-installed" ] && return 0
  [ -x "$venv/bin/python" ] || "$PY313" -m venv "$venv" || return 1
  "$venv/bin/python" -m pip install -q --upgrade pip || return 1
  for v in $LITELLM_VERSIONS; do
    echo "trying litellm[proxy]==$v"
    if "$venv/bin/python" -m pip install -q "litellm[proxy]==$v"; then
      echo "$v" >"$venv/.bench-installed"; return 0
    fi
  done
  return 1
}

install_tools() {  # the profiler, and aiohttp for the upstream-client comparison, in the bench's own venv
  local venv=$PEERS/bench-venv
  [ -f "$venv/.bench-installed" ] && return 0
  [ -x "$venv/bin/python" ] || "$PY313" -m venv "$venv" || return 1
  "$venv/bin/python" -m pip install -q py-spy aiohttp && touch "$venv/.bench-installed"
}

step wrk install_wrk
step tools install_tools
step portkey install_portkey
step litellm install_litellm
exit 0
