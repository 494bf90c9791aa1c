"""Signed checkpoints: the log must still extend what an operator kept outside the database."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from releasegate.audit.checkpoint import merkle_root, note_text, read_checkpoint
from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.audit.services import entry_hash, link_hash
from releasegate.audit.tasks import publish_checkpoint
from releasegate.releases.services import veto_cast
from releasegate.signing import keys
from tests.builders import make_release, submitted_release

ROOT = Path(__file__).resolve().parent.parent.parent
pg = pytest.mark.postgres


def _run(*args: str) -> str:
    out: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    call_command(*args, stdout=Sink())
    return "".join(out)


def _refused(*args: str) -> str:
    with pytest.raises(CommandError) as refused:
        _run(*args)
    return str(refused.value)


def _checkpoint(tmp_path: Path, name: str = "checkpoint.txt") -> Path:
    path = tmp_path / name
    _run("audit_checkpoint", "-o", str(path))
    return path


def _as_dba(*statements: tuple[str, list]) -> None:
    """Behind the application's back: triggers and foreign keys off, as a superuser can."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


def _truncate_and_hide(chain: AuditChain, keep: int) -> None:
    """Drop the chain's events after #keep and set its head row to match what is left."""
    last = AuditEvent.objects.get(chain=chain, seq=keep)
    _as_dba(
        ("DELETE FROM audit_auditevent WHERE chain_id = %s AND seq > %s", [chain.pk, keep]),
        (
            "UPDATE audit_auditchain SET size = %s, head_hash = %s WHERE id = %s",
            [keep, last.hash, chain.pk],
        ),
    )


def test_checkpoint_names_every_chain_with_its_size_and_head(personas, tmp_path):
    make_release(personas.project, personas.requester)
    text = _checkpoint(tmp_path).read_text()
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    body, _, signature = text.partition("\n\n")
    lines = body.split("\n")
    assert lines[0] == "releasegate/audit"
    assert int(lines[1]) == AuditEvent.objects.count()
    assert f"chain support-assistant {chain.size} {chain.head_hash}" in lines
    assert signature.startswith("\u2014 releasegate/audit ")


def test_current_log_extends_its_own_checkpoint(personas, tmp_path):
    make_release(personas.project, personas.requester)
    path = _checkpoint(tmp_path)
    out = _run("verify_audit", "--checkpoint", str(path))
    assert f"intact: {AuditEvent.objects.count()} events verified" in out
    assert "extends the checkpoint" in out


def test_a_checkpoint_from_before_more_events_still_verifies(personas, tmp_path):
    release = make_release(personas.project, personas.requester)
    path = _checkpoint(tmp_path)
    seen = AuditEvent.objects.count()
    submitted_release(personas.project, personas.requester, version="2.0.0")
    veto_cast(release=release, actor=personas.actor("security"), role="security", reason="no")
    assert AuditEvent.objects.count() > seen
    out = _run("verify_audit", "--checkpoint", str(path))
    assert f"({seen} events in" in out


@pg
def test_truncated_tail_with_a_rewritten_head_row_is_caught_only_by_the_checkpoint(
    personas, tmp_path
):
    submitted_release(personas.project, personas.requester)
    path = _checkpoint(tmp_path)
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    seen = chain.size
    _truncate_and_hide(chain, keep=seen - 3)
    # What is left is a perfect chain: without a checkpoint, nothing shows the lost tail.
    assert "intact" in _run("verify_audit")
    error = _refused("verify_audit", "--checkpoint", str(path))
    assert f"chain support-assistant has {seen - 3} events, the checkpoint saw {seen}" in error


@pg
def test_a_rewritten_event_with_recomputed_hashes_is_caught_by_the_checkpoint(personas, tmp_path):
    release = submitted_release(personas.project, personas.requester)
    veto_cast(release=release, actor=personas.actor("security"), role="security", reason="PII")
    path = _checkpoint(tmp_path)
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    veto = AuditEvent.objects.get(chain=chain, seq=chain.size)
    assert veto.action == "veto_cast"
    # A forger softens the veto's reason and recomputes its hashes and the head row, as the
    # application would have: the chain is whole again.
    forged = veto.data | {"reason": "fine"}
    veto.data = forged
    entry = entry_hash(veto, chain=chain.name)
    rehashed = link_hash(veto.prev_hash, entry)
    _as_dba(
        (
            "UPDATE audit_auditevent SET data = %s, entry_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(forged), entry, rehashed, veto.pk],
        ),
        ("UPDATE audit_auditchain SET head_hash = %s WHERE id = %s", [rehashed, chain.pk]),
    )
    assert "intact" in _run("verify_audit")
    error = _refused("verify_audit", "--checkpoint", str(path))
    assert f"chain support-assistant was rewritten: event #{veto.seq} is not the one" in error


@pg
def test_a_rewritten_head_row_alone_is_caught_without_a_checkpoint(personas):
    make_release(personas.project, personas.requester)
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    _as_dba(("UPDATE audit_auditchain SET head_hash = %s WHERE id = %s", ["f" * 64, chain.pk]))
    assert "head row was rewritten" in _refused("verify_audit")
    _as_dba(("UPDATE audit_auditchain SET size = size - 1 WHERE id = %s", [chain.pk]))
    assert "head row was rewritten" in _refused("verify_audit")


@pg
def test_a_deleted_chain_is_caught_by_the_checkpoint(personas, tmp_path):
    make_release(personas.project, personas.requester)
    path = _checkpoint(tmp_path)
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    _as_dba(
        ("DELETE FROM audit_auditevent WHERE chain_id = %s", [chain.pk]),
        ("DELETE FROM audit_auditchain WHERE id = %s", [chain.pk]),
    )
    error = _refused("verify_audit", "--checkpoint", str(path))
    assert f"chain support-assistant is gone, the checkpoint saw {chain.size} events" in error


def test_a_checkpoint_altered_after_signing_is_refused(personas, tmp_path):
    make_release(personas.project, personas.requester)
    path = _checkpoint(tmp_path)
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    text = path.read_text()
    path.write_text(
        text.replace(
            f"chain support-assistant {chain.size} ", f"chain support-assistant {chain.size + 9} "
        )
    )
    error = _refused("verify_audit", "--checkpoint", str(path))
    assert "checkpoint refused: bad signature" in error


def _foreign_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _signed_by(key: ec.EllipticCurvePrivateKey) -> str:
    text = note_text(timezone.now(), [])
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    hint = bytes.fromhex(keys.keyid_of(key.public_key()))[:4]
    return f"{text}\n\u2014 releasegate/audit {base64.b64encode(hint + signature).decode()}\n"


def _pem(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_text(keys.public_pem_of(key.public_key()))
    return path


def test_a_checkpoint_signed_by_an_unknown_key_is_refused(personas, tmp_path):
    path = tmp_path / "forged.txt"
    path.write_text(_signed_by(_foreign_key()))
    error = _refused("verify_audit", "--checkpoint", str(path))
    assert "checkpoint refused: the checkpoint is signed by an unknown key" in error


def test_key_given_on_the_command_line_decides(personas, tmp_path):
    path = _checkpoint(tmp_path)
    ours = tmp_path / "ours.pem"
    ours.write_text(keys.active_key().public_pem)
    assert "extends the checkpoint" in _run(
        "verify_audit", "--checkpoint", str(path), "--key", str(ours)
    )
    other = _pem(_foreign_key(), tmp_path / "other.pem")
    error = _refused("verify_audit", "--checkpoint", str(path), "--key", str(other))
    assert "bad signature" in error and "the key given" in error
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert "the key given is not a PEM public key" in _refused(
        "verify_audit", "--checkpoint", str(path), "--key", str(not_pem)
    )


@pytest.mark.parametrize(
    "content, says",
    [
        ("", "no blank line"),
        ("hello\n\nworld\n", "no signature by releasegate/audit"),
        ("example.com/log\n1\nAA==\n\n\u2014 releasegate/audit AAAA\n", "first line is not"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_refused(personas, tmp_path, content, says):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    assert says in _refused("verify_audit", "--checkpoint", str(path))


def test_a_missing_checkpoint_file_is_named(personas, tmp_path):
    missing = tmp_path / "nope.txt"
    assert f"cannot read the checkpoint {missing}" in _refused(
        "verify_audit", "--checkpoint", str(missing)
    )


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, written as the RFC defines it."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_merkle_root_is_rfc_9162_tree_hash():
    assert merkle_root([]) == hashlib.sha256(b"").digest()
    for n in range(1, 18):
        leaves = [f"leaf {i}".encode() for i in range(n)]
        assert merkle_root(leaves) == _mth(leaves), n


def test_scheduler_publishes_checkpoints_into_the_configured_folder(personas, settings, tmp_path):
    make_release(personas.project, personas.requester)
    settings.RELEASEGATE_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    first = Path(publish_checkpoint())
    assert first.parent == tmp_path / "checkpoints"
    checkpoint = read_checkpoint(first.read_text())
    assert checkpoint.size == AuditEvent.objects.count()
    assert list(first.parent.iterdir()) == [first]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=os.environ | {"DATABASE_URL": url} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_scheduler_runs_the_publisher_only_when_a_folder_is_set(tmp_path):
    show = "from django.conf import settings; print(settings.CELERY_BEAT_SCHEDULE)"
    on = _manage(
        "shell",
        "-c",
        show,
        RELEASEGATE_CHECKPOINT_DIR=str(tmp_path),
        RELEASEGATE_CHECKPOINT_SECONDS="600",
    )
    assert "'releasegate.audit.tasks.publish_checkpoint', 'schedule': 600.0" in on.stdout
    off = _manage("shell", "-c", show, RELEASEGATE_CHECKPOINT_DIR="")
    assert "publish_checkpoint" not in off.stdout


@pg
@pytest.mark.django_db(transaction=True)
def test_operator_commands_catch_a_truncated_tail_as_separate_processes(personas, tmp_path):
    submitted_release(personas.project, personas.requester)
    path = tmp_path / "kept-elsewhere.txt"
    written = _manage("audit_checkpoint", "-o", str(path))
    assert written.returncode == 0, written.stderr
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    _truncate_and_hide(chain, keep=chain.size - 2)
    broken = _manage("verify_audit", "--checkpoint", str(path))
    assert broken.returncode != 0
    assert (
        f"chain support-assistant has {chain.size - 2} events, the checkpoint saw {chain.size}"
        in broken.stderr
    )
