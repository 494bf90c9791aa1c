"""CPU time per check, in Python and in PostgreSQL: what bounds a worker on 2 cores, whatever
else the (shared) machine is doing.

    .venv/bin/python bench/checks_bench.py --light --releases 100   # fills the database
    .venv/bin/python bench/checks_cpu.py [--checks 200]

Runs `run_check` in this process over the light checks that checks_bench left in its database
(CHECKS_BENCH_DB, default rg_checks_bench), set back to pending, twice: opening a new database
connection for every task (what Celery's Django fixup did without CELERY_DB_REUSE_MAX) and
keeping one. Prints the SQL statements per check and the CPU milliseconds per check of this
process and of its PostgreSQL server process, and 2 cores divided by their sum: the ceiling of
checks/s on 2 cores, before Celery's own per-message work.
"""

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("CHECKS_BENCH_DB", "rg_checks_bench")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
os.environ["CELERY_BROKER_URL"] = "memory://"
os.environ["LOG_LEVEL"] = "WARNING"
sys.path.insert(0, str(ROOT))
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds() -> float:
    """utime + stime of this connection's PostgreSQL server process (same machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pending_keys(count: int) -> list[tuple[int, str, str]]:
    from releasegate.checks.models import CheckResult

    CheckResult.objects.update(status="pending", claimed_until=None, attempts=0)
    return list(
        CheckResult.objects.order_by("pk").values_list(
            "release_id", "check_name", "manifest_digest"
        )[:count]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=200)
    args = parser.parse_args()
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from releasegate.checks.tasks import run_check

    keys = pending_keys(args.checks + 1)
    run_check.run(*keys[0])  # compiled schemas, warm caches: as in a worker after its first check
    with CaptureQueriesContext(connection) as captured:
        run_check.run(*keys[1])
    print(f"{len(captured.captured_queries)} SQL statements per check")
    for reconnect in (True, False):
        keys = pending_keys(args.checks)
        connection.close()
        server = 0.0
        began = time.process_time()
        kept_from = server_cpu_seconds()
        for key in keys:
            run_check.run(*key)
            if reconnect:
                # Counted before the server process exits with the connection (10 ms ticks, so
                # a process's start-up cost is undercounted here: a floor).
                server += server_cpu_seconds()
                connection.close()
        if not reconnect:
            server = server_cpu_seconds() - kept_from
        python_ms = 1000 * (time.process_time() - began) / len(keys)
        server_ms = 1000 * server / len(keys)
        label = "a new connection per task" if reconnect else "one connection kept      "
        print(
            f"{label}: Python {python_ms:.2f} ms + PostgreSQL {server_ms:.2f} ms CPU per check"
            f" = at most {2000 / (python_ms + server_ms):.0f} checks/s on 2 cores"
        )


if __name__ == "__main__":
    main()
