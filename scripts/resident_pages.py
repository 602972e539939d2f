"""Which pages of a Lambda binary are resident after its first invocations, by section and by
crate (BENCHMARKS.md, "Cold start and memory within 2× of a bare echo").

Starts BINARY as Lambda starts a bootstrap (a fresh process polling a local Runtime API), gives it
INVOCATIONS events (EVENT_JSON, or `{"hello": "world"}`), waits for its next poll, then reads
`/proc/<pid>/status` (VmHWM, RssFile, RssAnon), `/proc/<pid>/maps` and `/proc/<pid>/pagemap` (the
present bit of each page, readable without privileges) and prints the resident KiB of each mapped
file, of each section of the binary, and of the binary's `.text` by the crate of the symbols on
each resident page, next to what each crate links. The symbols come from an unstripped build of
the same tree: the release profile strips them, and stripping moves no loaded byte, e.g.

    CARGO_PROFILE_RELEASE_STRIP=none cargo build --release --target-dir /tmp/unstripped -p console

The environment is the caller's plus the Runtime API's: give it what the function reads at start
(AWS_REGION, the keys, TABLE_NAME, AWS_ENDPOINT_URL at a moto for the calls its events make...).

Usage: .venv/bin/python scripts/resident_pages.py BINARY INVOCATIONS [EVENT_JSON]
"""

import bisect
import collections
import http.server
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

import runtime_api

BINARY = sys.argv[1]
INVOCATIONS = int(sys.argv[2])
EVENT = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else {"hello": "world"}
PAGE = 4096
state = {"served": 0, "polls": 0, "answers": []}
changed = threading.Condition()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Hands out INVOCATIONS events, then holds the next poll; keeps the answers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with changed:
            state["polls"] += 1
            changed.notify_all()
            changed.wait_for(lambda: state["served"] < INVOCATIONS)
            state["served"] += 1
            request_id = f"request-{state['served']}"
        body = json.dumps(EVENT).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with changed:
            state["answers"].append((self.path.rsplit("/", 1)[-1], body[:120]))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def resident(pagemap, lo, hi):
    """The addresses of the present pages in [lo, hi)."""
    pagemap.seek(lo // PAGE * 8)
    entries = struct.iter_unpack("<Q", pagemap.read((hi - lo) // PAGE * 8))
    return [lo + i * PAGE for i, (entry,) in enumerate(entries) if entry >> 63 & 1]


def crate_of(symbol):
    """The crate a demangled symbol belongs to (its first path segment: for `<&T as
    core::fmt::Debug>::fmt`, core), or "C" for a symbol without a path (aws-lc's, libc's glue)."""
    if symbol.startswith("aws_lc"):
        return "C: aws-lc"
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", symbol)
    return match.group(1) if match else "C: other"


def sections_of(binary):
    """(address, size, name) of the binary's allocated sections."""
    listing = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in listing.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if m and int(m.group(2), 16):
            found.append((int(m.group(2), 16), int(m.group(3), 16), m.group(1)))
    return found


def symbols_of(binary):
    """(address, size, demangled name) of the binary's defined symbols, by address."""
    listing = subprocess.run(["nm", "-C", "--defined-only", "-S", binary], capture_output=True, text=True, check=True)
    found = []
    for line in listing.stdout.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) \w (.*)", line)
        if m:
            found.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    return sorted(found)


def main():
    env = runtime_api.serve(RuntimeApi)
    process = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with changed:
        if not changed.wait_for(lambda: state["polls"] > INVOCATIONS, timeout=30):
            process.kill()
            sys.exit(f"{BINARY} did not poll again after {INVOCATIONS} events")
    time.sleep(0.1)
    pid = process.pid
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    print("answers:", state["answers"])
    print(", ".join(f"{k} {status[k].strip()}" for k in ("VmHWM", "VmRSS", "RssFile", "RssAnon")))
    real = os.path.realpath(BINARY)
    maps = []
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        maps.append((lo, hi, parts[1], int(parts[2], 16), parts[5] if len(parts) > 5 else ""))
    base = min(lo - offset for lo, _, _, offset, path in maps if path == real)
    per_file = collections.Counter()
    binary_pages = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for lo, hi, perms, _, path in maps:
            if not path.startswith("/"):
                continue
            pages = resident(pagemap, lo, hi)
            per_file[f"{os.path.basename(path)} {perms}"] += len(pages) * PAGE // 1024
            if path == real:
                binary_pages += [address - base for address in pages]
    process.kill()
    process.wait()
    print("resident KiB by mapped file:")
    for name, kib in per_file.most_common():
        print(f"  {kib:7d}  {name}")
    sections = sections_of(real)
    symbols = symbols_of(real)
    starts = [address for address, _, _ in symbols]
    text = next((s for s in sections if s[2] == ".text"), None)
    by_section = collections.Counter()
    by_crate = collections.Counter()
    for page in binary_pages:
        section = next((name for start, size, name in sections if start <= page < start + size), "(between sections)")
        by_section[section] += PAGE // 1024
        if section != ".text":
            continue
        owners = collections.Counter()
        i = max(bisect.bisect_right(starts, page) - 1, 0)
        while i < len(symbols) and symbols[i][0] < page + PAGE:
            start, size, name = symbols[i]
            overlap = min(start + size, page + PAGE) - max(start, page)
            if overlap > 0:
                owners[crate_of(name)] += overlap
            i += 1
        total = sum(owners.values()) or 1
        for crate, share in owners.items():
            by_crate[crate] += PAGE / 1024 * share / total
    linked = collections.Counter()
    for start, size, name in symbols:
        if text and text[0] <= start < text[0] + text[1]:
            linked[crate_of(name)] += size / 1024
    print("the binary's resident KiB by section (of its size):")
    for name, kib in by_section.most_common():
        size = next((s for _, s, n in sections if n == name), 0)
        print(f"  {kib:7d}  {name}" + (f" (of {size // 1024})" if size else ""))
    print("its .text resident KiB by crate (of what the crate links), the 30 largest:")
    for crate, kib in by_crate.most_common(30):
        print(f"  {kib:7.0f}  {crate} (of {linked[crate]:.0f})")


if __name__ == "__main__":
    main()
