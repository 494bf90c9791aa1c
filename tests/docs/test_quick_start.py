"""The README's quick start as written: `./bin/demo` on its embedded default (SQLite and the local
file broker, no PostgreSQL, no Redis) serves every persona's pages, answers the gate, and its
worker computes checks. The test suite otherwise runs on PostgreSQL, where SQL that SQLite
refuses passes unnoticed (the check claim's upsert and "Waiting on me" did, until this test)."""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = ["alice", "sam", "erin", "olga", "audrey", "oscar", "ravi", "sofia", "elena"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """`PORT=<free> RELEASEGATE_DATA_DIR=<tmp> ./bin/demo`, in the environment a reader has: none
    of the test run's settings (DEBUG, the database, the broker) leak into it."""
    data = tmp_path_factory.mktemp("demo-data")
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PORT": str(port),
        "RELEASEGATE_DATA_DIR": str(data),
    }
    process = subprocess.Popen(
        ["./bin/demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"./bin/demo stopped:\n{output}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("./bin/demo did not answer /healthz within 240 s")
        yield base, data
        # "Ctrl-C stops all three processes": the terminal's SIGINT, to the whole process group.
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
        assert _left(process.pid) == [], "Ctrl-C left processes of ./bin/demo running"
    finally:
        if _left(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _left(group: int) -> list[int]:
    """The processes of a process group still running (zombies are gone)."""
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                left.append(int(entry.name))
    return left


def _signed_in(base: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    answer = client.post(
        "/login/",
        data={
            "username": user,
            "password": f"{user}-releasegate-demo",
            "csrfmiddlewaretoken": token.group(1),
        },
        headers={"Referer": f"{base}/login/"},
    )
    assert answer.status_code == 302, f"{user} could not sign in"
    return client


def test_the_demo_is_ready_on_sqlite_and_the_local_broker(demo):
    base, data = demo
    assert httpx.get(f"{base}/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    assert (data / "releasegate.sqlite3").is_file()


def test_every_persona_of_the_demo_gets_their_pages(demo):
    base, _ = demo
    for user in PERSONAS:
        client = _signed_in(base, user)
        home = client.get("/")
        assert home.status_code == 200, user
        visible = client.get("/api/v1/releases").json()["results"]
        for release in visible:
            assert client.get(f"/releases/{release['id']}/").status_code == 200, user
        assert client.get("/releases/").status_code == 200, user
        assert client.get("/dashboard/").status_code in (200, 302), user
    assert "1.4.0" in _signed_in(base, "sam").get("/").text  # waits on sam, as demo.md says


def test_the_demos_worker_computes_the_checks_of_new_evidence(demo):
    base, _ = demo
    alice = _signed_in(base, "alice")
    release = next(
        r
        for r in alice.get("/api/v1/releases", params={"version": "1.5.0"}).json()["results"]
        if r["project"] == "support-assistant"
    )
    plan = {
        "owner": "ml-platform on-call",
        "escalation": "page the on-call, then the security lead",
        "signals": [
            {
                "name": "toxic output rate",
                "kind": "output_anomaly",
                "threshold": "> 0.5% over 10 min",
                "runbook": "https://runbooks.example.com/toxic-output",
            },
            {
                "name": "PII in responses",
                "kind": "data_exposure",
                "threshold": "any",
                "runbook": "https://runbooks.example.com/pii-leak",
            },
        ],
    }
    put = alice.put(
        f"/api/v1/releases/{release['id']}/evidence/monitoring_plan",
        json=plan,
        headers={"X-CSRFToken": alice.cookies["csrftoken"], "Referer": f"{base}/"},
    )
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        blockers = alice.get(f"/api/v1/releases/{release['id']}/gate").json()["blockers"]
        if not any(b["code"] == "check_pending" for b in blockers):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the demo's worker left checks pending: {blockers}")
    failed = {b["check"] for b in blockers if b["code"] == "check_failed"}
    assert failed == {"vulnerabilities", "least_privilege"}  # the story's, on the new manifest
