#!/usr/bin/env bash
# Fuzz every route of openapi.yaml with schemathesis against a local stack of its own:
# moto, the functions under `cargo lambda watch`, and the local HTTP API of scripts/local_stack.py.
# Not part of `make test` (minutes, not seconds); run it with `make fuzz-api`.
#
# Every answer is checked: no 5xx (`not_a_server_error`) and a body that matches the schema of its
# status (`response_schema_conformance`). Add checks with FUZZ_CHECKS (a comma list of
# schemathesis check names, e.g. `all`).
#
# Bounded: FUZZ_MAX_EXAMPLES cases per operation (default 30) and FUZZ_MAX_TIME seconds for the
# whole run (default 600). FUZZ_SEED makes a run reproducible (default: a fixed seed; `random`
# for a new one). Ports: FUZZ_MOTO_PORT (5055), FUZZ_LAMBDA_PORT (9055), FUZZ_API_PORT (3055), so
# a `make dev` on the default ports keeps running. Logs, pids and the JUnit report: .local/fuzz/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SCHEMATHESIS_VERSION="4.32.5"
VENV="$ROOT/.venv"
WORK="$ROOT/.local/fuzz"
LOGS="$WORK/logs"
PIDS="$WORK/pids"
SCHEMA="$ROOT/openapi.yaml"

MOTO_PORT="${FUZZ_MOTO_PORT:-5055}"
LAMBDA_PORT="${FUZZ_LAMBDA_PORT:-9055}"
API_PORT="${FUZZ_API_PORT:-3055}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-30}"
MAX_TIME="${FUZZ_MAX_TIME:-600}"
SEED="${FUZZ_SEED:-20261126}"
CHECKS="${FUZZ_CHECKS:-not_a_server_error,response_schema_conformance}"
HOST=127.0.0.1
TABLE_NAME="kiro-fuzz"
IDENTITY_STORE_ID="d-1234567890"
REGION="us-east-1"

# shellcheck source=scripts/processes.sh
source "$ROOT/scripts/processes.sh"

# Sends one request to the local API and prints the status; the body goes to $WORK/last.json.
api() {
    local method="$1" path="$2" body="${3:-}"
    local args=(-s -o "$WORK/last.json" -w '%{http_code}' -X "$method" --max-time 900)
    [[ -z "$body" ]] || args+=(-H 'content-type: application/json' -d "$body")
    curl "${args[@]}" "http://$HOST:$API_PORT$path"
}

# ------------------------------------------------------------------------------------- setup

[[ -f "$SCHEMA" ]] || die "${SCHEMA#"$ROOT"/} does not exist yet: nothing to fuzz"
command -v setsid >/dev/null || die "setsid (util-linux) is required"
command -v curl >/dev/null || die "curl is required"

scripts/dev.sh venv
if [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" \
    != "$SCHEMATHESIS_VERSION" ]]; then
    say "installing schemathesis==$SCHEMATHESIS_VERSION into ${VENV#"$ROOT"/}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

mkdir -p "$LOGS" "$PIDS"
stop_all # whatever an interrupted run left behind
for port in "$MOTO_PORT" "$LAMBDA_PORT" "$API_PORT"; do
    port_free "$port" || die "port $port is in use (override with FUZZ_MOTO_PORT, FUZZ_LAMBDA_PORT, FUZZ_API_PORT)"
done
trap 'trap - INT TERM EXIT; stop_all; exit 130' INT TERM
trap 'stop_all' EXIT

say "building the functions (the first request must not wait for a compile)"
cargo build --quiet --bin create-profile --bin assign-tier --bin sync-group

stack=("$VENV/bin/python" "$ROOT/scripts/local_stack.py")
moto="http://$HOST:$MOTO_PORT"
export AWS_REGION="$REGION" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

say "starting moto on $moto"
start moto "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H "$HOST" -p "$MOTO_PORT"
"${stack[@]}" wait-for --url "$moto/moto-api/" --timeout 30
"${stack[@]}" create-table --endpoint "$moto" --name "$TABLE_NAME"
"${stack[@]}" create-bus --endpoint "$moto"
"${stack[@]}" seed-demo --endpoint "$moto" --identity-store-id "$IDENTITY_STORE_ID" >"$WORK/demo-directory.json"

say "starting cargo lambda watch on port $LAMBDA_PORT"
env_vars=(
    "TABLE_NAME=$TABLE_NAME"
    "EVENT_BUS_NAME=$("${stack[@]}" param EventBusName)"
    "SUPPORTED_REGIONS=$("${stack[@]}" param SupportedRegions)"
    "AUDIT_REVOKE_LIMIT_PERCENT=$("${stack[@]}" param AuditRevokeLimitPercent)"
    "AWS_REGION=$REGION"
    "AWS_ENDPOINT_URL=$moto"
    "AWS_ACCESS_KEY_ID=testing"
    "AWS_SECRET_ACCESS_KEY=testing"
)
printf '%s\n' "${env_vars[@]}" >"$WORK/lambda.env"
# --ignore-changes: an edit made while the run goes on must not recompile and restart the
# functions under it (requests would time out, or hit a half-edited tree).
start lambda env "PATH=$VENV/bin:$PATH" "${env_vars[@]}" \
    cargo lambda watch --ignore-changes --invoke-address "$HOST" --invoke-port "$LAMBDA_PORT" \
    --env-file "$WORK/lambda.env"
"${stack[@]}" wait-for --url "http://$HOST:$LAMBDA_PORT/" --timeout 300

say "starting the local HTTP API on port $API_PORT"
start gateway "${stack[@]}" gateway --host "$HOST" --port "$API_PORT" --lambda-url "http://$HOST:$LAMBDA_PORT"
"${stack[@]}" wait-for --tcp --url "$HOST:$API_PORT" --timeout 30

# A profile and a subscribed group, so the subscription and seat routes get past ProfileRequired
# and lists have items. The first call to each function may wait for `cargo run`.
say "creating the profile and a group subscription"
status="$(api POST /profile "{\"name\": \"Fuzz\", \"identityStoreId\": \"$IDENTITY_STORE_ID\"}")"
[[ "$status" == 201 ]] || die "POST /profile answered $status: $(cat "$WORK/last.json")"
status="$(api POST /subscriptions '{"principalType": "GROUP", "displayName": "engineering", "tier": "PRO"}')"
[[ "$status" == 201 ]] || die "POST /subscriptions answered $status: $(cat "$WORK/last.json")"

# ----------------------------------------------------------------------------------------- run

# Repeated query parameters too (API Gateway joins them with commas). TRACE and QUERY are left
# out of the unexpected methods: the local gateway (Python's http.server) answers them itself
# with 501, and API Gateway never passes them to a function.
cat >"$WORK/schemathesis.toml" <<'TOML'
[phases.coverage]
generate-duplicate-query-parameters = true
unexpected-methods = ["get", "put", "post", "delete", "options", "patch"]
TOML

seed_args=(--seed "$SEED")
[[ "$SEED" != random ]] || seed_args=()
say "schemathesis $SCHEMATHESIS_VERSION: $CHECKS, up to $MAX_EXAMPLES examples per operation, ${MAX_TIME}s at most"
rc=0
# From .local/fuzz, so schemathesis keeps its cache (.schemathesis/) there, out of the tree.
(cd "$WORK" && "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$SCHEMA" \
    --url "http://$HOST:$API_PORT" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --request-timeout 60 \
    "${seed_args[@]}" \
    --report junit --report-dir "$WORK/report" \
    --no-color) || rc=$?

if ((rc != 0)); then
    printf '\nschemathesis found failures (exit %s). Function logs: %s\n' "$rc" "${LOGS#"$ROOT"/}/lambda.log" >&2
fi
exit "$rc"
