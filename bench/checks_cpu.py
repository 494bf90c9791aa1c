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

With `--profile` it then runs the checks once more under cProfile, timed by this process's CPU
clock (time spent waiting for PostgreSQL is not counted), and prints where a check's CPU goes:
the check's own computation, building SQL, the driver, the audit append, the notices, the rest.
"""

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument("--profile", action="store_true", help="where a check's CPU goes")
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
    if args.profile:
        profile(run_check, pending_keys(args.checks))


# Where a check's CPU goes: every function's own time (not its callees'), summed by where its
# code lives; the first matching fragment names the row, so the rows add up to the whole.
AREAS = [
    ("releasegate: the checks' rules and SBOM reading", ("releasegate/checks/",)),
    ("releasegate: audit, notices, services, rest", ("releasegate/",)),
    ("Django ORM: building SQL", ("django/db/models/sql/", "django/db/models/expressions")),
    ("Django ORM: rows to objects, saving, signals", ("django/db/", "django/dispatch/")),
    ("psycopg: sending, waiting, parsing rows", ("psycopg",)),
    ("JSON and JSON Schema", ("json", "jsonschema", "referencing")),
    ("builtins and other libraries, mostly called by the ORM", ("",)),
]


def profile(run_check: Any, keys: list[tuple[int, str, str]]) -> None:
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for key in keys:
        run_check.run(*key)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    spent = dict.fromkeys([label for label, _ in AREAS], 0.0)
    for (path, _, _), row in stats.items():
        label = next(label for label, fragments in AREAS if any(f in path for f in fragments))
        spent[label] += row[2]
    total = sum(spent.values())
    print(f"\nprofile: cProfile on the CPU clock over {len(keys)} checks (waiting is not CPU;")
    print("the profiler's own overhead inflates every row alike, so read the shares)")
    print(f"  {'where':55} {'share':>6}")
    for label, seconds in spent.items():
        print(f"  {label:55} {100 * seconds / total:5.0f}%")


if __name__ == "__main__":
    main()
