#!/usr/bin/env bash
# Local development stack: moto (DynamoDB and its streams, EventBridge, Identity Store), the
# functions under `cargo lambda watch`, a local API Gateway HTTP API in front of them, the table's
# stream handed to publish-events, a local OpenID Connect provider for the console's sign-in
# (scripts/oidc) and an sso-admin stand-in (ListInstances).
#
#   scripts/dev.sh         start everything; Ctrl-C stops everything      (make dev)
#   scripts/dev.sh start   start everything in the background, return once it answers
#                          (for scripts and the browser tests; stop it with `down`)
#   scripts/dev.sh down    stop what a previous run left behind           (make dev-down)
#   scripts/dev.sh venv    create/update .venv with the pinned dev tools  (make venv)
#
# Ports: MOTO_PORT (5000), LAMBDA_PORT (9000), API_PORT (3000), OIDC_PORT (3001),
# SSO_ADMIN_PORT (3002). Logs, pid files and the demo directory's ids: LOCAL_DIR (.local/); a
# second stack on other ports needs a LOCAL_DIR of its own, and `down` the same LOCAL_DIR.
# WATCH=0 serves the functions as built instead of rebuilding them when a source file changes
# (the default of `start`, whose callers want the code they started with).
# TEMPLATE: the SAM template the stack is read from (template.yaml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Resolved before the cd below, so that a relative LOCAL_DIR means what the caller meant.
LOCAL="$(realpath -m "${LOCAL_DIR:-$ROOT/.local}")"
TEMPLATE="$(realpath -m "${TEMPLATE:-$ROOT/template.yaml}")"
cd "$ROOT"

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/scripts/requirements-dev.txt"
OIDC_DIR="$ROOT/scripts/oidc"
LOGS="$LOCAL/logs"
PIDS="$LOCAL/pids"

MOTO_PORT="${MOTO_PORT:-5000}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
API_PORT="${API_PORT:-3000}"
OIDC_PORT="${OIDC_PORT:-3001}"
SSO_ADMIN_PORT="${SSO_ADMIN_PORT:-3002}"
# Loopback only: the invoke API and the gateway take unauthenticated requests. IPv4, because
# ::1 is missing where IPv6 is disabled (some containers); `cargo lambda invoke` needs `-A`.
LAMBDA_HOST=127.0.0.1
TABLE_NAME="kiro-local"
# Of AWS's form (d- and 10 hex digits): the console checks the id that ListInstances gives it.
IDENTITY_STORE_ID="d-1234567890"
REGION="us-east-1"
OIDC_CLIENT_ID="kiro-console-local"
# scripts/oidc/server.mjs signs every demo user in with this password.
DEMO_PASSWORD="demo"
TAIL_PID=""

API="http://127.0.0.1:$API_PORT"
ISSUER="http://127.0.0.1:$OIDC_PORT"
MOTO="http://127.0.0.1:$MOTO_PORT"
STACK=("$VENV/bin/python" "$ROOT/scripts/local_stack.py" --template "$TEMPLATE")

# shellcheck source=scripts/processes.sh
source "$ROOT/scripts/processes.sh"

# Every service, in start order; stop_all (processes.sh) stops them in reverse.
SERVICES=(moto sso-admin oidc lambda gateway bus stream)

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

# ------------------------------------------------------------------------- the OIDC provider

# scripts/oidc/node_modules as its package-lock.json says: `npm ci` when it is missing or the
# lockfile changed since the last install (a stamp holds the lockfile's hash).
ensure_oidc_packages() {
    command -v node >/dev/null || die "node is required for the local OpenID Connect provider (Node.js 20.19 or later)"
    command -v npm >/dev/null || die "npm is required for the local OpenID Connect provider"
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
        || die "Node.js $(node --version) is too old for scripts/oidc (oidc-provider needs 20.19 or later)"
    local lock="$OIDC_DIR/package-lock.json" stamp="$OIDC_DIR/node_modules/.package-lock.sha256" want fd
    want="$(sha256sum "$lock" | cut -d' ' -f1)"
    [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]] || return 0
    # Two stacks starting at once (make dev and the browser tests) share this node_modules:
    # one installs, the other waits and then finds the stamp.
    exec {fd}<"$lock"
    flock "$fd"
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        say "installing the local OpenID Connect provider's packages (npm ci in scripts/oidc)"
        (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGS/npm-ci.log" 2>&1 \
            || { cat "$LOGS/npm-ci.log" >&2; die "npm ci in scripts/oidc failed"; }
        echo "$want" >"$stamp"
    fi
    exec {fd}<&-
}

# ------------------------------------------------------------------------------------- launch

# The binaries of the template's functions (console included, once template.yaml declares it).
function_binaries() {
    "${STACK[@]}" binaries
}

# True when the template routes /console to a function.
console_routed() {
    "${STACK[@]}" routes | awk -F '\t' '$2 == "/console" { found = 1 } END { exit !found }'
}

# Starts every service in the background (each in a session of its own, see processes.sh) and
# returns once each answers. The caller decides whether to stay (up) or leave them (start).
launch() {
    local watch="$1"
    command -v setsid >/dev/null || die "setsid (util-linux) is required"
    command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
    [[ -f "$TEMPLATE" ]] || die "no template at $TEMPLATE"
    ensure_venv
    mkdir -p "$LOGS" "$PIDS"

    rm -f "$LOCAL/down-requested"
    stop_all # whatever a previous run left behind
    for port in "$MOTO_PORT" "$LAMBDA_PORT" "$API_PORT" "$OIDC_PORT" "$SSO_ADMIN_PORT"; do
        port_free "$port" || die "port $port is in use (override with MOTO_PORT, LAMBDA_PORT, API_PORT, OIDC_PORT, SSO_ADMIN_PORT)"
    done
    ensure_oidc_packages

    export AWS_REGION="$REGION" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

    say "starting moto on $MOTO"
    start moto "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT"
    "${STACK[@]}" wait-for --url "$MOTO/moto-api/" --timeout 30

    say "creating table $TABLE_NAME, the event bus and the demo directory"
    "${STACK[@]}" create-table --endpoint "$MOTO" --name "$TABLE_NAME"
    "${STACK[@]}" create-bus --endpoint "$MOTO"
    "${STACK[@]}" seed-demo --endpoint "$MOTO" --identity-store-id "$IDENTITY_STORE_ID" \
        >"$LOCAL/demo-directory.json"
    "${STACK[@]}" demo-users >"$LOCAL/demo-users.json"

    # moto's own ListInstances gives an identity store id the console refuses (not d-<10 hex>).
    say "starting the sso-admin stand-in on port $SSO_ADMIN_PORT (ListInstances -> $IDENTITY_STORE_ID)"
    start sso-admin "${STACK[@]}" sso-admin --port "$SSO_ADMIN_PORT" --identity-store-id "$IDENTITY_STORE_ID"

    say "starting the local OpenID Connect provider on $ISSUER"
    start oidc env OIDC_PORT="$OIDC_PORT" OIDC_CLIENT_ID="$OIDC_CLIENT_ID" CONSOLE_BASE_URL="$API" \
        OIDC_USERS_FILE="$LOCAL/demo-users.json" OIDC_DEMO_PASSWORD="$DEMO_PASSWORD" \
        node "$OIDC_DIR/server.mjs"

    # Build the functions before serving them: `cargo lambda watch` would otherwise compile each
    # one on its first request, and that request would wait minutes with nothing on the screen.
    # One `cargo build` per function resolves features as `cargo lambda watch` does (per binary),
    # so watch finds them built.
    local functions
    mapfile -t functions < <(function_binaries)
    ((${#functions[@]} > 0)) || die "${TEMPLATE#"$ROOT"/} declares no function with Metadata.BuildProperties.Binary"
    say "building the functions: ${functions[*]} (a fresh clone: about 3-4 minutes on 2 cores; afterwards seconds)"
    local started=$SECONDS
    for function in "${functions[@]}"; do
        cargo build --bin "$function" || die "building $function failed"
    done
    say "functions built in $((SECONDS - started)) s"

    say "starting cargo lambda watch on port $LAMBDA_PORT"
    # The functions' environment as the template sets it, pointed at moto and the local stand-ins.
    # One environment serves every function (cargo lambda watch has one), so the console's
    # variables are there too.
    local env_vars=(
        "TABLE_NAME=$TABLE_NAME"
        "EVENT_BUS_NAME=$("${STACK[@]}" param EventBusName)"
        "SUPPORTED_REGIONS=$("${STACK[@]}" param SupportedRegions)"
        "AUDIT_REVOKE_LIMIT_PERCENT=$("${STACK[@]}" param AuditRevokeLimitPercent)"
        "AWS_REGION=$REGION"
        "AWS_ENDPOINT_URL=$MOTO"
        "AWS_ENDPOINT_URL_SSO_ADMIN=http://127.0.0.1:$SSO_ADMIN_PORT"
        "AWS_ACCESS_KEY_ID=testing"
        "AWS_SECRET_ACCESS_KEY=testing"
        "CONSOLE_OIDC_ISSUER=$ISSUER"
        "CONSOLE_OIDC_CLIENT_ID=$OIDC_CLIENT_ID"
        "CONSOLE_BASE_URL=$API"
        "CONSOLE_USER_CLAIM=preferred_username"
    )
    # The tiers' prices and credits, where the template gives them (else the code's defaults).
    local line
    while IFS= read -r line; do
        env_vars+=("$line")
    done < <("${STACK[@]}" function-env TIER_PRICES_USD TIER_CREDITS OVERAGE_PRICE_USD)
    # Passed both ways: inherited, and as an env file (not --env-var, which splits on commas).
    # Single-quoted: the env file's parser refuses an unquoted `=` in a value (PRO=20,...).
    local env_file="$LOCAL/lambda.env" var
    : >"$env_file"
    for var in "${env_vars[@]}"; do
        [[ "$var" != *\'* ]] || die "cannot quote $var for $env_file"
        printf "%s='%s'\n" "${var%%=*}" "${var#*=}" >>"$env_file"
    done
    local watch_args=()
    # --ignore-changes: an edit made while tests run must not recompile and restart the
    # functions under them (requests would time out, or hit a half-edited tree).
    [[ "$watch" == 1 ]] || watch_args=(--ignore-changes)
    # cargo finds the cargo-lambda subcommand (and cargo-lambda finds zig) on .venv/bin.
    start lambda env "PATH=$VENV/bin:$PATH" "${env_vars[@]}" \
        cargo lambda watch "${watch_args[@]}" --invoke-address "$LAMBDA_HOST" --invoke-port "$LAMBDA_PORT" \
        --env-file "$env_file"

    say "starting the local HTTP API on port $API_PORT"
    start gateway "${STACK[@]}" gateway --port "$API_PORT" --lambda-url "http://$LAMBDA_HOST:$LAMBDA_PORT"

    say "delivering the stack's bus ($("${STACK[@]}" param EventBusName)) to its functions, as the template's rules do"
    start bus "${STACK[@]}" forward --endpoint "$MOTO" --lambda-url "http://$LAMBDA_HOST:$LAMBDA_PORT"

    say "handing the table's stream to publish-events (seat events to the bus), as the template's event source does"
    start stream "${STACK[@]}" stream --endpoint "$MOTO" --table "$TABLE_NAME" \
        --lambda-url "http://$LAMBDA_HOST:$LAMBDA_PORT"

    wait_ready
}

# Returns once every service answers; dies (the caller stops the rest) when one does not.
wait_ready() {
    say "waiting for the services to answer"
    "${STACK[@]}" wait-for --tcp --url "127.0.0.1:$SSO_ADMIN_PORT" --timeout 15 --pid "$(service_pid sso-admin)"
    "${STACK[@]}" wait-for --url "$ISSUER/.well-known/openid-configuration" --below 300 --timeout 30 \
        --pid "$(service_pid oidc)"
    # Accepting connections is enough: a request to / only logs an error (no default function).
    "${STACK[@]}" wait-for --tcp --url "$LAMBDA_HOST:$LAMBDA_PORT" --timeout 120 --pid "$(service_pid lambda)"
    "${STACK[@]}" wait-for --tcp --url "127.0.0.1:$API_PORT" --timeout 15 --pid "$(service_pid gateway)"
    if console_routed; then
        # The console's first request starts it (and reads the issuer's discovery document):
        # anything but a 5xx means it is serving.
        "${STACK[@]}" wait-for --url "$API/console" --below 500 --timeout 300 --request-timeout 120 \
            --pid "$(service_pid lambda)"
    else
        say "warning: ${TEMPLATE#"$ROOT"/} routes no /console yet: the console is not served"
    fi
    local name
    for name in "${SERVICES[@]}"; do
        service_alive "$name" || die "$name stopped while starting; see ${LOGS}/$name.log"
    done
}

service_pid() {
    local sid _
    read -r sid _ <"$PIDS/$1.pid"
    echo "$sid"
}

service_alive() {
    local sid _
    read -r sid _ <"$PIDS/$1.pid" 2>/dev/null || return 1
    [[ -n "$(session_members "$sid")" ]]
}

print_tails() {
    local name
    for name in "${SERVICES[@]}"; do
        [[ -s "$LOGS/$name.log" ]] || continue
        printf '\n--- %s (last 30 lines, successful requests left out)\n' "$LOGS/$name.log" >&2
        # moto logs every request; its 200s say nothing about a failure.
        grep -v '" 200 -$' "$LOGS/$name.log" | tail -n 30 >&2 || true
    done
}

print_summary() {
    cat <<EOF

Local stack is up (logs in ${LOGS}/):
  console                 $API/console
      sign in as          alice (admin: KiroAdmins) or bob (viewer: KiroViewers), password: $DEMO_PASSWORD
                          (carol, dave, erin, frank are in neither group: 403)
  API Gateway (HTTP API)  $API            caller: arn:aws:iam::000000000000:user/local-admin
  OpenID Connect issuer   $ISSUER      client $OIDC_CLIENT_ID (public, PKCE)
  sso-admin stand-in      http://127.0.0.1:$SSO_ADMIN_PORT      ListInstances -> $IDENTITY_STORE_ID
  cargo lambda watch      http://$LAMBDA_HOST:$LAMBDA_PORT
  moto                    $MOTO      table $TABLE_NAME, identity store $IDENTITY_STORE_ID
  demo directory ids      $LOCAL/demo-directory.json
EOF
}

print_examples() {
    print_summary
    cat <<EOF

  cargo lambda watch rebuilds a function when you save one of its source files.
  The stack's bus: rules of template.yaml deliver audits, continuations and seat names to sync-group.
  The table's stream: every seat change's outbox goes to publish-events, which puts its seat events
  on the bus ($LOGS/stream.log shows each batch).

Try:
  curl -s -X POST $API/profile -H 'content-type: application/json' \\
       -d '{"name": "Platform team", "identityStoreId": "$IDENTITY_STORE_ID"}'
  curl -s $API/profile
  curl -s -X POST $API/subscriptions -H 'content-type: application/json' \\
       -d '{"principalType": "GROUP", "displayName": "engineering", "tier": "PRO"}'
  curl -s "$API/seats?tier=PRO&limit=10"      # userName filled within seconds (Seat Names Requested)
  curl -s "$API/directory/users?q=alice"
  curl -s "$API/directory/groups?limit=2"      # without q: the directory page by page

Kiro's daily activity report (after subscribing engineering): today's report for alice and bob
is written to moto's S3 and delivered to ingest-activity, which activates their PENDING seats:
  "$VENV/bin/python" scripts/local_stack.py activity-report --endpoint http://127.0.0.1:$MOTO_PORT \\
       --lambda-url http://$LAMBDA_HOST:$LAMBDA_PORT --directory $LOCAL/demo-directory.json --users alice,bob
  curl -s "$API/seats?status=ACTIVE"
  curl -s "$API/usage"
  curl -s "$API/activity/imports"

Events for sync-group (the CloudTrail samples carry fixed ids, not the demo directory's;
-A is needed because cargo lambda invoke defaults to [::1] and the functions listen on $LAMBDA_HOST):
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/scheduled-audit.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/audit-requested-report.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/audit-requested-continuation.json
  PATH="\$PWD/.venv/bin:\$PATH" cargo lambda invoke sync-group -A $LAMBDA_HOST -P $LAMBDA_PORT --data-file events/cloudtrail/identitystore-create-group-membership.json

EOF
}

# ---------------------------------------------------------------------------------- commands

# `make dev`: in the foreground; Ctrl-C, or any service stopping, stops everything.
up() {
    trap 'trap - INT TERM EXIT; stop_all; exit 130' INT TERM
    trap 'stop_all' EXIT
    launch "${WATCH:-1}"

    print_examples
    say "following the logs (Ctrl-C to stop)"
    tail -n +1 -F "$LOGS/lambda.log" "$LOGS/gateway.log" "$LOGS/bus.log" "$LOGS/stream.log" "$LOGS/oidc.log" \
        "$LOGS/sso-admin.log" &
    TAIL_PID=$!

    # Stop as soon as any service exits on its own.
    local status=0
    local pids=() name sid _
    for name in "${SERVICES[@]}"; do
        read -r sid _ <"$PIDS/$name.pid"
        pids+=("$sid")
    done
    wait -n "${pids[@]}" || status=$?
    if [[ -f "$LOCAL/down-requested" ]]; then
        say "stopped by 'make dev-down'"
        exit 0
    fi
    printf 'a service stopped (exit %s); see %s/\n' "$status" "$LOGS" >&2
    exit 1
}

# `dev.sh start`: the same stack, left running in the background once it answers.
start_background() {
    # Until everything answers, a failure stops what was started and shows why.
    trap 'trap - INT TERM EXIT; stop_all; exit 130' INT TERM
    trap 'status=$?; trap - EXIT; if ((status != 0)); then print_tails; stop_all; fi; exit "$status"' EXIT
    launch "${WATCH:-0}"
    trap - INT TERM EXIT
    print_summary
    printf '  stop it with            %sscripts/dev.sh down\n\n' "$([[ -z "${LOCAL_DIR:-}" ]] || printf 'LOCAL_DIR=%q ' "$LOCAL_DIR")"
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
    start) start_background ;;
    down) down ;;
    venv) ensure_venv ;;
    *) die "usage: $0 [up|start|down|venv]" ;;
esac
