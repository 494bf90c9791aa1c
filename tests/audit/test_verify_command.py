"""verify_audit as an operator runs it: a separate process, its exit status and its message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from releasegate.audit.models import AuditEvent
from tests.builders import submitted_release

ROOT = Path(__file__).resolve().parent.parent.parent


def _verify_audit() -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    env = os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    }
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verify_audit_exits_non_zero_naming_the_altered_event(personas):
    # One process start only (it is slow); exit 0 on an intact trail is tested in-process.
    submitted_release(personas.project, personas.requester)
    submitted = AuditEvent.objects.get(action="release_submitted")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET actor = 'someone-else' WHERE id = %s", [submitted.pk]
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    broken = _verify_audit()
    assert broken.returncode != 0
    assert f"event #{submitted.seq}" in broken.stderr
