"""moto's server, one request at a time.

moto's TransactWriteItems is not isolated: it snapshots the table, applies the items one by one
and, when a condition fails, puts the whole snapshot back. Two transactions at once (moto serves
each connection on its own thread) can therefore undo a third's committed writes, or bring back
items deleted meanwhile — what DynamoDB never does. Measured here: 6 runs in 9 of
`tests/tests/load.rs` under load saw committed seat writes rolled back by another transaction's
failure. Serving one request at a time gives moto DynamoDB's all-or-nothing transactions;
connections are still accepted concurrently (keep-alive clients do not starve), and moto's
throughput is bound by Python's GIL either way.

The table's stream (template.yaml's StreamSpecification) makes that snapshot dear: moto copies
every stream record with it, deeply, on every transaction. Measured on 2026-12-01 (moto 5.2.1
in-process, 30 transactions of 97 puts, a shared 2-vCPU machine): 130 s without a stream, 285 s
with one. Records never change once written, so the snapshot copies the list of them instead
(`cheap_stream_snapshots`): 112 s with the stream, the same records, and a failed transaction
still puts the stream back as it was.

Usage (as `moto_server`): python scripts/moto_server.py -H 127.0.0.1 -p 5000
"""

import argparse
import copy
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def serialized(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            # The body is produced inside the lock too: a response iterator may still read state.
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()

    return handle


def cheap_stream_snapshots() -> None:
    """A deep copy of a table's stream shard shares its records (never changed once appended)
    and copies the list of them; everything else is copied deeply, as before."""
    from moto.dynamodb.models.table import StreamShard

    def deepcopy_shard(self, memo):
        clone = StreamShard.__new__(StreamShard)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = list(value) if name == "items" else copy.deepcopy(value, memo)
        return clone

    StreamShard.__deepcopy__ = deepcopy_shard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    cheap_stream_snapshots()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialized(app), threaded=True)


if __name__ == "__main__":
    main()
