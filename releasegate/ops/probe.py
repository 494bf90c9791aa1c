"""Container health probes: `python -m releasegate.ops.probe web|broker|database`.

`web` asks this container's /healthz with a Host header the service accepts (the first of
ALLOWED_HOSTS), so the probe passes host validation like a real request. `broker` and `database`
serve the processes that have no HTTP server (worker, scheduler, migrations).
"""

import os
import sys
import urllib.request


def probe_web() -> bool:
    host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".")
    request = urllib.request.Request(
        f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz",
        headers={"Host": host or "localhost", "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310 - fixed URL
            return bool(response.status == 200)
    except OSError:
        return False


def probe_dependency(name: str) -> bool:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
    django.setup()
    from releasegate.ops.views import broker_problem, database_problem

    check = broker_problem if name == "broker" else database_problem
    return check() is None


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "web"
    if what not in {"web", "broker", "database"}:
        print("usage: python -m releasegate.ops.probe web|broker|database", file=sys.stderr)
        return 2
    healthy = probe_web() if what == "web" else probe_dependency(what)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
