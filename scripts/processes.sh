# shellcheck shell=bash disable=SC2153 # VENV, LOGS and PIDS come from the sourcing script
# Process helpers for scripts/dev.sh and scripts/schemathesis.sh, which source this file after
# setting VENV (the project's .venv), LOGS and PIDS (where logs and pid files go). A script may
# set TAIL_PID to a log follower that stop_all ends too.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------- processes

# Every child is started with setsid, so it leads its own session: stopping it means signalling
# every process of that session (cargo-lambda's `cargo run` children included), by session id.
session_members() {
    ps -e -o pid= -o sid= | awk -v sid="$1" '$2 == sid { print $1 }'
}

# When a process started, whitespace-normalised; empty if it is gone.
started_at() {
    { ps -o lstart= -p "$1" 2>/dev/null || true; } | awk '{ $1 = $1; print }'
}

stop_session() {
    local sid="$1" name="$2" pids _
    pids="$(session_members "$sid")"
    [[ -n "$pids" ]] || return 0
    say "stopping $name"
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 50); do
        [[ -n "$(session_members "$sid")" ]] || return 0
        sleep 0.1
    done
    pids="$(session_members "$sid")"
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
}

stop_all() {
    local pidfile sid started now
    if [[ -n "${TAIL_PID:-}" ]]; then
        kill "$TAIL_PID" 2>/dev/null || true
        TAIL_PID=""
    fi
    [[ -d "$PIDS" ]] || return 0
    # Reverse start order: the stream's poller, bus forwarder, gateway, functions, the console's
    # identity provider and sso-admin stand-in (dev.sh), then the emulator they all use.
    for name in stream bus gateway lambda oidc sso-admin moto; do
        pidfile="$PIDS/$name.pid"
        [[ -f "$pidfile" ]] || continue
        read -r sid started <"$pidfile" || true
        now="$(started_at "$sid")"
        # A leader alive with another start time is a reused pid, not ours: leave it alone.
        if [[ -n "$sid" && (-z "$now" || "$now" == "$started") ]]; then
            stop_session "$sid" "$name"
        fi
        rm -f "$pidfile"
    done
}

# start NAME COMMAND...: run COMMAND in a new session, output to $LOGS/NAME.log
start() {
    local name="$1"
    shift
    : >"$LOGS/$name.log"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    # Not a process group leader (no job control here), setsid runs in place: $! is the session id.
    local pid=$!
    echo "$pid $(started_at "$pid")" >"$PIDS/$name.pid"
}

port_free() {
    "$VENV/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}
