#!/usr/bin/env bash
# The API's OpenAPI contract, checked against a live node (called by .ci/run):
#   1. validate deploy/openapi.json with openapi-spec-validator;
#   2. start one `jobmesh` node on loopback (its own CA, certificate, config
#      and data under target/schemathesis/);
#   3. run Schemathesis against its /v1/openapi.json with every check on
#      (no 5xx, responses match the schema, errors are the `Error` body,
#      schema-invalid input refused, wrong methods answered 405 with Allow),
#      bounded by --max-examples and --max-time;
#   4. stop that node by its pid.
# Exits non-zero on any failure. JOBMESH_SEED=N replays a run (default 7);
# SCHEMATHESIS_MAX_EXAMPLES and SCHEMATHESIS_MAX_TIME_S bound it.
set -euo pipefail
cd "$(dirname "$0")/../.."

seed=${JOBMESH_SEED:-7}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-40}
max_time_s=${SCHEMATHESIS_MAX_TIME_S:-180}
work=target/schemathesis
venv=target/venv

# Python 3.11 before 3.11.8 can fail inside Hypothesis with "AST constructor
# recursion depth mismatch" (a CPython bug), so a newer interpreter is
# preferred when the machine has one (JOBMESH_PYTHON names one outright).
pick_python() {
  local c
  for c in ${JOBMESH_PYTHON:-} python3.13 python3.12 \
           $(pyenv root 2>/dev/null | sed 's|$|/versions|' | xargs -I{} sh -c 'ls -d {}/3.1[2-9]*/bin/python3 2>/dev/null' | sort -r) \
           python3; do
    if "$c" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11, 8) and sys.version_info[:2] == (3, 11))' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  echo python3
}
python=$(pick_python)
echo "== OpenAPI: Python tools in $venv ($("$python" --version))"
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx 'schemathesis==4.32.5' ||
   [ "$("$venv/bin/python" -c 'import platform; print(platform.python_version())')" != "$("$python" -c 'import platform; print(platform.python_version())')" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openapi-spec-validator==0.9.0' 'schemathesis==4.32.5'
fi
echo "== OpenAPI: $("$venv/bin/schemathesis" --version)"

echo "== OpenAPI: validating deploy/openapi.json"
"$venv/bin/openapi-spec-validator" deploy/openapi.json

echo "== OpenAPI: the text patterns under Python's regular expressions"
"$venv/bin/python" deploy/ci/check_patterns.py deploy/openapi.json

[ -n "${JOBMESH_BIN:-}" ] || cargo build --locked -q -p jobmesh
bin=${JOBMESH_BIN:-target/debug/jobmesh}

rm -rf "$work" && mkdir -p "$work"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
quic=$("$venv/bin/python" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" ca init --dir "$work/pki" >/dev/null
"$bin" ca issue --dir "$work/pki" --node gz >/dev/null
cat > "$work/node.toml" <<TOML
node_id  = "gz"
data_dir = "data"
listen   = "127.0.0.1:$quic"
api      = "127.0.0.1:$port"

[tls]
ca_cert = "pki/ca.pem"
cert    = "pki/gz.pem"
key     = "pki/gz.key"
TOML

"$bin" run --config "$work/node.toml" >"$work/node.log" 2>&1 &
node_pid=$!
stop_node() { kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; }
trap stop_node EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$base/healthz', timeout=1).read() == b'ok' else 1)" 2>/dev/null; then
    break
  fi
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log" >&2; echo "the node exited" >&2; exit 1; }
  sleep 0.1
done
"$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" ||
  { cat "$work/node.log" >&2; echo "the node did not answer /healthz" >&2; exit 1; }

# A worker and a posting for the placements that Schemathesis generates
# (see schemathesis_hooks.py): nothing else in the API hands out their ids.
seed_record() {
  "$venv/bin/python" -c '
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["id"])' "$base$1" "$2"
}
JOBMESH_ST_WORKER=$(seed_record /v1/workers '{"name": "Schemathesis", "key_group": "other"}')
JOBMESH_ST_POSTING=$(seed_record /v1/postings \
  '{"title": "Schemathesis", "employer": "jobmesh CI", "category": "testing", "work_type": "temporary", "positions": 100000}')
export JOBMESH_ST_WORKER JOBMESH_ST_POSTING

echo "== OpenAPI: Schemathesis against $base (seed $seed, at most $max_examples examples per operation, ${max_time_s}s)"
status=0
"$venv/bin/schemathesis" --config-file deploy/ci/schemathesis.toml run "$base/v1/openapi.json" \
  --checks all --max-examples "$max_examples" --max-time "$max_time_s" --seed "$seed" \
  --workers 2 --request-timeout 10 --generation-database none \
  --report junit,ndjson --report-dir "$work/report" || status=$?

stop_node
trap - EXIT
if [ "$status" != 0 ]; then
  tail -n 50 "$work/node.log" >&2
  echo "Schemathesis found problems (exit $status); replay with JOBMESH_SEED=$seed $0" >&2
  exit "$status"
fi
echo "== OpenAPI: Schemathesis found nothing"
