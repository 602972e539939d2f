"""Cold starts of two or more builds side by side (BENCHMARKS.md, "Cold start and memory").

`make bench`'s `-- process` measures one tree's binaries; this compares builds of different
trees (a change's before and after) in the same run: each binary is started ROUNDS times, round
robin so the machine's noise spreads over all of them, as Lambda starts a bootstrap (a fresh
process polling a Runtime API), and timed from just before the spawn to its first
`GET /runtime/invocation/next`. It prints each binary's median and its ratio to the first
binary's, and two counts that the machine's load moves less than wall time: the CPU time the
process used (user and system, from `wait4` once it is killed: it is idle after its first poll)
and its minor page faults (the pages of its binary and libraries it mapped, heap pages). The environment is the caller's plus the Runtime API's variables: give it what the
functions need at start (AWS_REGION, the keys, TABLE_NAME, ...); init calls nothing, so no
emulator is needed.

Usage: .venv/bin/python scripts/cold_start_ab.py ROUNDS BINARY [BINARY...]
"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

import runtime_api

ROUNDS = int(sys.argv[1])
BINARIES = sys.argv[2:]
polled = threading.Event()
first_poll = {}


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Notes the first poll and never answers it: the process is killed first."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        first_poll.setdefault("at", time.perf_counter())
        polled.set()
        time.sleep(5)


def main():
    env = runtime_api.serve(RuntimeApi)
    samples = {b: [] for b in BINARIES}
    cpu = {b: [] for b in BINARIES}
    faults = {b: [] for b in BINARIES}
    for _ in range(ROUNDS):
        for binary in BINARIES:
            polled.clear()
            first_poll.clear()
            started = time.perf_counter()
            process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not polled.wait(10):
                sys.exit(f"{binary} never polled the Runtime API")
            samples[binary].append((first_poll["at"] - started) * 1000)
            process.kill()
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = -9
            cpu[binary].append((usage.ru_utime + usage.ru_stime) * 1000)
            faults[binary].append(usage.ru_minflt)
    reference = statistics.median(samples[BINARIES[0]])
    for binary in BINARIES:
        median = statistics.median(samples[binary])
        print(
            f"{binary}: median {median:.2f} ms of {ROUNDS}, {median / reference:.2f}x the first; "
            f"CPU {statistics.median(cpu[binary]):.2f} ms, {statistics.median(faults[binary]):.0f} minor faults (medians)"
        )


if __name__ == "__main__":
    main()
