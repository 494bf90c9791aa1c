"""Gunicorn settings for the container (`gunicorn --config python:releasegate.ops.gunicorn_conf`).

Each web process writes its metrics to PROMETHEUS_MULTIPROC_DIR; the files of a previous run are
removed at start and a dead worker's live gauges are dropped, as prometheus_client documents.
"""

import gc
import os
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# The application is imported once, in the master, and every worker is forked from it warm
# (releasegate/wsgi.py imports the URLconf and its views too). Importing it costs a second or more
# of CPU; without this each recycled worker paid it again, and its first request another
# second. The import opens no database connection and starts no thread (a test checks), so
# nothing is shared across the fork. A code change needs a restart, not a HUP, to be picked up.
preload_app = True
# Recycle processes now and then so a slow leak cannot grow without bound: a recycle costs a
# fork and a new database connection.
max_requests = 20000
max_requests_jitter = 2000
# The request middleware writes one JSON line per request with its id; no second access log.
accesslog = None


class NoAccessLogger(Logger):
    """Gunicorn's logger without its access log. Gunicorn builds an access line (every header
    and environ atom) on each request whenever a logging dict is configured, even with no
    handler to write it to; the request middleware's line is the access log."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


logger_class = NoAccessLogger
errorlog = "-"
# No runtime control socket: the image's home directory is read-only for the service user.
control_socket_disable = True
# Trust X-Forwarded-* only from the proxy in front (Django also needs SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "releasegate.ops.logs.JsonFormatter"}},
    "filters": {"redact": {"()": "releasegate.ops.logs.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["redact"],
        }
    },
    "loggers": {"gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def pre_fork(server: Any, worker: Any) -> None:
    # The preloaded app's objects (a quarter of a million) live as long as the process: frozen,
    # a full garbage collection in a worker does not walk them (75 ms each, measured: a request
    # that met one waited that long) and does not touch their pages, which stay shared.
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
