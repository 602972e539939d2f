"""moto's server, one request at a time.

moto's TransactWriteItems is not isolated: it snapshots the table, applies the items one by one
and, when a condition fails, puts the whole snapshot back. Two transactions at once (moto serves
each connection on its own thread) can therefore undo a third's committed writes, or bring back
items deleted meanwhile — what DynamoDB never does. Measured here: 6 runs in 9 of
`tests/tests/load.rs` under load saw committed seat writes rolled back by another transaction's
failure. Serving one request at a time gives moto DynamoDB's all-or-nothing transactions;
connections are still accepted concurrently (keep-alive clients do not starve), and moto's
throughput is bound by Python's GIL either way.

Usage (as `moto_server`): python scripts/moto_server.py -H 127.0.0.1 -p 5000
"""

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialized(app), threaded=True)


if __name__ == "__main__":
    main()
