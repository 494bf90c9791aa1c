"""Benchmark of the automated checks.

    .venv/bin/python bench/checks_bench.py [--advisories 50000] [--components 5000] [--releases 40]
    .venv/bin/python bench/checks_bench.py --light [--releases 100]

Measures, on PostgreSQL (a database of its own, rg_checks_bench, recreated) and Redis (database 15):
1. importing 50,000 OSV advisories: the 2,661 real PyPI ones in ../shared/data plus generated ones
   across npm, Maven, Go, crates.io and PyPI; then again (idempotent: nothing is written);
2. the sbom_valid and vulnerabilities checks on one SBOM of 5,000 components;
3. a real `celery -A releasegate worker` (2 processes) on Redis: checks per second over releases in
   review, each needing the seven default checks, enqueued by the sweep.
With --light, only 3., over the six light checks (sbom_valid on a small SBOM, licenses,
pipeline_findings, data_flow, monitoring_coverage, least_privilege). CHECKS_BENCH_DB names
another database than rg_checks_bench.
"""

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPA_ZIP = ROOT / ".." / "shared" / "data" / "osv" / "pypa-advisory-database.osv.zip"
DB_NAME = os.environ.get("CHECKS_BENCH_DB", "rg_checks_bench")
LIGHT_CHECKS = [
    "sbom_valid",
    "licenses",
    "pipeline_findings",
    "data_flow",
    "monitoring_coverage",
    "least_privilege",
]
BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
os.environ["CELERY_BROKER_URL"] = BROKER
sys.path.insert(0, str(ROOT))

ECOSYSTEMS = {  # OSV ecosystem -> (purl type, name maker, version maker)
    "npm": ("npm", lambda i: f"bench-npm-{i}", lambda a, b, c: f"{a}.{b}.{c}"),
    "Maven": ("maven", lambda i: f"org.bench{i % 97}:artifact-{i}", lambda a, b, c: f"{a}.{b}.{c}"),
    "Go": ("golang", lambda i: f"github.com/bench/mod{i}", lambda a, b, c: f"{a}.{b}.{c}"),
    "crates.io": ("cargo", lambda i: f"bench-crate-{i}", lambda a, b, c: f"{a}.{b}.{c}"),
    "PyPI": ("pypi", lambda i: f"bench-py-{i}", lambda a, b, c: f"{a}.{b}.{c}"),
}


def recreate_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB_NAME}")


def generated_advisories(count: int, rng: random.Random) -> list[dict]:
    out = []
    names = list(ECOSYSTEMS)
    for i in range(count):
        ecosystem = names[i % len(names)]
        _, make_name, make_version = ECOSYSTEMS[ecosystem]
        package = make_name(i // len(names) % 4000)
        fixed = make_version(rng.randint(1, 5), rng.randint(0, 9), rng.randint(0, 9))
        range_type = "SEMVER" if ecosystem in {"npm", "Go", "crates.io"} else "ECOSYSTEM"
        events = [{"introduced": "0"}, {"fixed": fixed}]
        if i % 7 == 0:
            events = [{"introduced": "1.0.0"}, {"last_affected": fixed}]
        doc = {
            "schema_version": "1.6.0",
            "id": f"BENCH-{ecosystem.replace('.', '')}-{i}",
            "modified": "2026-01-01T00:00:00Z",
            "summary": f"generated advisory {i}",
            "affected": [
                {
                    "package": {"ecosystem": ecosystem, "name": package},
                    "ranges": [{"type": range_type, "events": events}],
                }
            ],
        }
        if i % 3 == 0:
            doc["database_specific"] = {"severity": rng.choice(["LOW", "MODERATE", "HIGH"])}
        out.append(doc)
    return out


def write_zip(path: Path, generated: list[dict]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        if PYPA_ZIP.exists():
            with zipfile.ZipFile(PYPA_ZIP) as real:
                for name in real.namelist():
                    out.writestr(f"pypa/{name}", real.read(name))
        for doc in generated:
            out.writestr(f"generated/{doc['id']}.json", json.dumps(doc))


def big_sbom(count: int, rng: random.Random) -> dict:
    components = []
    real_pypi = ["requests@2.19.0", "django@3.2.0", "flask@0.12", "jinja2@2.10", "urllib3@1.24.1"]
    for i in range(count):
        ecosystem = list(ECOSYSTEMS)[i % len(ECOSYSTEMS)]
        purl_type, make_name, make_version = ECOSYSTEMS[ecosystem]
        if i < len(real_pypi):
            name, version = real_pypi[i].split("@")
            purl_type = "pypi"
        else:
            name = make_name(rng.randint(0, 5000))
            version = make_version(rng.randint(0, 6), rng.randint(0, 9), rng.randint(0, 9))
        if purl_type == "maven":
            group, artifact = name.split(":")
            purl = f"pkg:maven/{group}/{artifact}@{version}"
        elif purl_type == "golang":
            purl = f"pkg:golang/{name}@v{version}"
        else:
            purl = f"pkg:{purl_type}/{name}@{version}"
        components.append(
            {
                "type": "library",
                "name": name,
                "version": version,
                "purl": purl,
                "licenses": [{"license": {"id": "MIT"}}],
            }
        )
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this machine (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_cpu_seconds(worker_pid: int) -> tuple[float, float]:
    """CPU seconds so far of the worker's processes (its session) and of the PostgreSQL server
    processes serving them (every other connection to the bench database)."""
    from django.db import connection

    celery = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[3]) == worker_pid:  # the process group of the worker's session
                celery += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        )
        backends = [row[0] for row in cursor.fetchall()]
    return celery, sum(process_cpu_seconds(pid) for pid in backends)


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed:.2f} s")
    return value, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--advisories", type=int, default=50_000)
    parser.add_argument("--components", type=int, default=5_000)
    parser.add_argument("--releases", type=int, default=40)
    parser.add_argument("--light", action="store_true", help="the worker on the light checks only")
    args = parser.parse_args()
    rng = random.Random(7)

    recreate_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from releasegate.accounts.actors import Actor
    from releasegate.checks.advisories import advisories_import
    from releasegate.checks.models import Advisory, AffectedPackage, CheckResult
    from releasegate.checks.runner import compute_check
    from releasegate.checks.selectors import checks_due
    from releasegate.checks.tasks import sweep
    from releasegate.releases.models import GovernanceChange
    from releasegate.releases.services import (
        evidence_attach,
        governance_change_confirm,
        policy_change,
        project_create,
        release_create,
        release_submit,
        role_grant,
    )
    from tests.builders import EVIDENCE

    system = Actor.system_actor()
    project = project_create(slug="bench", name="Bench", actor=system)
    user = get_user_model().objects.create_user("bench-requester")
    role_grant(project=project, user=user, role="requester", actor=system)
    requester = Actor.for_user(user)

    if args.light:
        role_grant(project=project, user=user, role="admin", actor=system)
        change = policy_change(
            project=project,
            actor=requester,
            changes={"required_checks": LIGHT_CHECKS},
            note="bench",
        )
        if isinstance(change, GovernanceChange):
            # Dropping a required check loosens the gate: a security holder confirms it.
            security = get_user_model().objects.create_user("bench-security")
            role_grant(project=project, user=security, role="security", actor=system)
            governance_change_confirm(change=change, actor=Actor.for_user(security))
    else:
        real = 2661 if PYPA_ZIP.exists() else 0
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "advisories.zip"
            write_zip(archive, generated_advisories(args.advisories - real, rng))
            report, import_s = timed(
                f"import {args.advisories} advisories (fresh)",
                lambda: advisories_import(path=archive),
            )
            again, reimport_s = timed(
                "import again (idempotent)", lambda: advisories_import(path=archive)
            )
        print(
            f"  stored {Advisory.objects.count()} advisories, "
            f"{AffectedPackage.objects.count()} affected packages; "
            f"second run: {again.created} new, {again.updated} updated, {again.unchanged} unchanged"
        )

        release = release_create(
            project=project,
            actor=requester,
            version="big",
            artifact_digest="sha256:" + "b" * 64,
            environment="production",
            summary="5,000-component SBOM",
        )
        sbom = big_sbom(args.components, rng)
        evidence_attach(release=release, actor=requester, kind="sbom", document=sbom)
        release.refresh_from_db()
        valid, sbom_s = timed(
            f"sbom_valid on {args.components} components",
            lambda: compute_check(
                release_id=release.pk, check="sbom_valid", manifest=release.manifest_digest
            )[0],
        )
        vulns, vuln_s = timed(
            f"vulnerabilities on {args.components} components",
            lambda: compute_check(
                release_id=release.pk, check="vulnerabilities", manifest=release.manifest_digest
            )[0],
        )
        print(
            f"  sbom_valid: {valid.status}; vulnerabilities: {vulns.status}, "
            f"{vulns.details['failing_count']} failing findings, "
            f"{vulns.details['below_threshold_count']} below threshold"
        )

    releases = []
    for n in range(args.releases):
        r = release_create(
            project=project,
            actor=requester,
            version=f"1.0.{n}",
            artifact_digest=f"sha256:{n:064x}",
            environment="production",
            summary="bench",
        )
        for kind, doc in EVIDENCE.items():
            evidence_attach(release=r, actor=requester, kind=kind, document=doc)
        releases.append(r)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    for r in releases:
        release_submit(release=r, actor=requester)  # enqueues at once, after commit
    total = len(checks_due())
    env = {**os.environ, "CELERY_BROKER_URL": BROKER}
    log = open(Path(tempfile.gettempdir()) / "checks_bench_worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "releasegate",
            "worker",
            "--loglevel=WARNING",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        finals = CheckResult.objects.filter(
            status__in=["passed", "failed", "error"], release__in=releases
        )
        while not finals.exists():
            time.sleep(0.05)
        started = time.perf_counter()
        first = finals.count()
        cpu_before = worker_cpu_seconds(worker.pid)
        while finals.count() < total:
            if time.perf_counter() - started > 600:
                raise SystemExit("the worker did not finish in 10 minutes")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu_after = worker_cpu_seconds(worker.pid)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    rate = (total - first) / elapsed
    print(
        f"worker (2 processes, Redis): {total} checks for {args.releases} releases; "
        f"{total - first} in {elapsed:.2f} s after the first = {rate:.1f} checks/s"
    )
    done = total - first
    celery_ms = 1000 * (cpu_after[0] - cpu_before[0]) / done
    server_ms = 1000 * (cpu_after[1] - cpu_before[1]) / done
    print(
        f"worker CPU per check: Celery processes {celery_ms:.2f} ms + PostgreSQL {server_ms:.2f} ms"
        f" = at most {2000 / (celery_ms + server_ms):.0f} checks/s on 2 cores of its own"
    )
    sweep.apply()

    if args.light:
        print(f"\nworker throughput, light checks: {rate:.1f} checks/s")
        return
    print("\nsummary")
    print(
        f"  import {args.advisories} advisories: {import_s:.1f} s "
        f"({args.advisories / import_s:.0f}/s); re-import: {reimport_s:.1f} s"
    )
    print(f"  sbom_valid, {args.components} components: {sbom_s:.2f} s")
    print(
        f"  vulnerabilities, {args.components} components x {args.advisories} advisories: "
        f"{vuln_s:.2f} s"
    )
    print(f"  worker throughput: {rate:.1f} checks/s")


if __name__ == "__main__":
    main()
