"""A local Lambda Runtime API for the measuring scripts (cold_start_ab.py, resident_pages.py):
serves a handler on a free port and gives the environment a bootstrap is started with."""

import http.server
import os
import threading


def serve(handler):
    """Starts `handler` on 127.0.0.1 at a free port, in a daemon thread; returns the bootstrap's
    environment: the caller's plus the Runtime API's variables, as Lambda sets them."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}",
        AWS_LAMBDA_FUNCTION_NAME="f",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    )
