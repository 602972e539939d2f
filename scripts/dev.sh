#!/usr/bin/env bash
# Local development stack: moto (DynamoDB, EventBridge, Identity Store), the three functions under
# `cargo lambda watch`, and a local API Gateway HTTP API in front of them.
#
#   scripts/dev.sh         start everything; Ctrl-C stops everything      (make dev)
#   scripts/dev.sh down    stop what a previous run left behind           (make dev-down)
#   scripts/dev.sh venv    create/update .venv with the pinned dev tools  (make venv)
#
# Ports: MOTO_PORT (5000), LAMBDA_PORT (9000), API_PORT (3000). Logs and pid files: .local/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/scripts/requirements-dev.txt"
LOCAL="$ROOT/.local"
LOGS="$LOCAL/logs"
PIDS="$LOCAL/pids"

MOTO_PORT="${MOTO_PORT:-5000}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
API_PORT="${API_PORT:-3000}"
# Loopback only: the invoke API and the gateway take unauthenticated requests. IPv4, because
# ::1 is missing where IPv6 is disabled (some containers); `cargo lambda invoke` needs `-A`.
LAMBDA_HOST=127.0.0.1
TABLE_NAME="kiro-local"
IDENTITY_STORE_ID="d-1234567890"
REGION="us-east-1"
TAIL_PID=""

# shellcheck source=scripts/processes.sh
source "$ROOT/scripts/processes.sh"

# --------------------------------------------------------------------------------------- venv

# True when every `name==version` pin in requirements-dev.txt is installed in .venv.
venv_up_to_date() {
    [[ -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" - "$REQUIREMENTS" <<'PY'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line)
    if not m:
        continue
    try:
        if version(m.group(1)) != m.group(3):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

ensure_venv() {
    if venv_up_to_date; then
        return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing the pinned dev tools of ${REQUIREMENTS#"$ROOT"/} into .venv: moto[server] (the AWS emulator),"
    say "  cargo-lambda (with zig, for the local Lambda runtime and arm64 builds) and cfn-lint; about 45 s the first time"
    local started=$SECONDS
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    say "dev tools installed in $((SECONDS - started)) s"
    venv_up_to_date || die "$VENV does not match $REQUIREMENTS after installing"
}

# ------------------------------------------------------------------------------------- up

print_examples() {
    local api="http://127.0.0.1:$API_PORT"
    cat <<EOF

Local stack is up (logs in .local/logs/, stop with Ctrl-C):
  API Gateway (HTTP API)  $api            caller: arn:aws:iam::000000000000:user/local-admin
  cargo lambda watch      http://$LAMBDA_HOST:$LAMBDA_PORT  (built; rebuilt when you save a source file)
  the stack's bus         rules of template.yaml deliver audits, continuations and seat names to sync-group
  moto                    http://127.0.0.1:$MOTO_PORT  table $TABLE_NAME, identity store $IDENTITY_STORE_ID
  demo directory ids      .local/demo-directory.json

Try:
  curl -s -X POST $api/profile -H 'content-type: application/json' \\
       -d '{"name": "Platform team", "identityStoreId": "$IDENTITY_STORE_ID"}'
  curl -s $api/profile
  curl -s -X POST $api/subscriptions -H 'content-type: application/json' \\
       -d '{"principalType": "GROUP", "displayName": "engineering", "tier": "PRO"}'
  curl -s "$api/seats?tier=PRO&limit=10"      # userName filled within seconds (Seat Names Requested)
  curl -s "$api/directory/users?q=alice"
  curl -s "$api/directory/groups?limit=2"      # without q: the directory page by page

Events for sync-group (the CloudTrail samples carry fixed ids, not the demo directory's;
-A is needed because cargo lambda invoke defaults to [::1] and the functions listen on $LAMBDA_HOST):
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/scheduled-audit.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/audit-requested-report.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/audit-requested-continuation.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/identitystore-create-group-membership.json

EOF
}

up() {
    command -v setsid >/dev/null || die "setsid (util-linux) is required"
    command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
    ensure_venv
    mkdir -p "$LOGS" "$PIDS"

    rm -f "$LOCAL/down-requested"
    stop_all # whatever a previous run left behind
    for port in "$MOTO_PORT" "$LAMBDA_PORT" "$API_PORT"; do
        port_free "$port" || die "port $port is in use (override with MOTO_PORT, LAMBDA_PORT, API_PORT)"
    done

    trap 'trap - INT TERM EXIT; stop_all; exit 130' INT TERM
    trap 'stop_all' EXIT

    local moto="http://127.0.0.1:$MOTO_PORT" stack=("$VENV/bin/python" "$ROOT/scripts/local_stack.py")
    export AWS_REGION="$REGION" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

    say "starting moto on $moto"
    start moto "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT"
    "${stack[@]}" wait-for --url "$moto/moto-api/" --timeout 30

    say "creating table $TABLE_NAME, the event bus and the demo directory"
    "${stack[@]}" create-table --endpoint "$moto" --name "$TABLE_NAME"
    "${stack[@]}" create-bus --endpoint "$moto"
    "${stack[@]}" seed-demo --endpoint "$moto" --identity-store-id "$IDENTITY_STORE_ID" \
        >"$LOCAL/demo-directory.json"

    # Build the functions before serving them: `cargo lambda watch` would otherwise compile each
    # one on its first request, and that request would wait minutes with nothing on the screen.
    # One `cargo build` per function resolves features as `cargo lambda watch` does (per binary),
    # so watch finds them built.
    say "building the functions (a fresh clone: about 3-4 minutes on 2 cores; afterwards seconds)"
    local started=$SECONDS
    for function in create-profile assign-tier sync-group; do
        cargo build --bin "$function" || die "building $function failed"
    done
    say "functions built in $((SECONDS - started)) s"

    say "starting cargo lambda watch on port $LAMBDA_PORT"
    # The functions' environment as the template sets it, pointed at moto.
    local env_vars=(
        "TABLE_NAME=$TABLE_NAME"
        "EVENT_BUS_NAME=$("${stack[@]}" param EventBusName)"
        "SUPPORTED_REGIONS=$("${stack[@]}" param SupportedRegions)"
        "AUDIT_REVOKE_LIMIT_PERCENT=$("${stack[@]}" param AuditRevokeLimitPercent)"
        "AWS_REGION=$REGION"
        "AWS_ENDPOINT_URL=$moto"
        "AWS_ACCESS_KEY_ID=testing"
        "AWS_SECRET_ACCESS_KEY=testing"
    )
    # Passed both ways: inherited, and as an env file (not --env-var, which splits on commas).
    local env_file="$LOCAL/lambda.env"
    printf '%s\n' "${env_vars[@]}" >"$env_file" # plain KEY=VALUE lines, as documented
    # cargo finds the cargo-lambda subcommand (and cargo-lambda finds zig) on .venv/bin.
    start lambda env "PATH=$VENV/bin:$PATH" "${env_vars[@]}" \
        cargo lambda watch --invoke-address "$LAMBDA_HOST" --invoke-port "$LAMBDA_PORT" --env-file "$env_file"

    say "starting the local HTTP API on port $API_PORT"
    start gateway "${stack[@]}" gateway --port "$API_PORT" --lambda-url "http://$LAMBDA_HOST:$LAMBDA_PORT"
    "${stack[@]}" wait-for --tcp --url "127.0.0.1:$API_PORT" --timeout 15

    say "delivering the stack's bus ($("${stack[@]}" param EventBusName)) to its functions, as the template's rules do"
    start bus "${stack[@]}" forward --endpoint "$moto" --lambda-url "http://$LAMBDA_HOST:$LAMBDA_PORT"

    print_examples
    say "following the logs (Ctrl-C to stop)"
    tail -n +1 -F "$LOGS/lambda.log" "$LOGS/gateway.log" "$LOGS/bus.log" &
    TAIL_PID=$!

    # Stop as soon as any service exits on its own.
    local status=0
    local pids=() name sid _
    for name in moto lambda gateway bus; do
        read -r sid _ <"$PIDS/$name.pid"
        pids+=("$sid")
    done
    wait -n "${pids[@]}" || status=$?
    if [[ -f "$LOCAL/down-requested" ]]; then
        say "stopped by 'make dev-down'"
        exit 0
    fi
    printf 'a service stopped (exit %s); see .local/logs/\n' "$status" >&2
    exit 1
}

# `make dev-down`, possibly while `make dev` runs in another terminal: leave a note so that
# run exits quietly instead of reporting a crashed service.
down() {
    if [[ -d "$LOCAL" ]]; then
        : >"$LOCAL/down-requested"
    fi
    stop_all
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    venv) ensure_venv ;;
    *) die "usage: $0 [up|down|venv]" ;;
esac
