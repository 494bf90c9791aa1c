"""An attestation issued while a break-glass clears the release says so, and still verifies."""

import json

import pytest

from releasegate.incidents.services import break_glass_confirm, break_glass_request
from tests.attestations.conftest import statement_of
from tests.attestations.test_verify_cli import fetch, key_file, verify  # noqa: F401  (fixture)
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.releases.gatehelpers import decide

pytestmark = pytest.mark.django_db


def test_a_break_glass_attestation_names_the_break_glass_and_verifies_for_its_environment(
    personas: Personas,
    tmp_path,
    key_file,  # noqa: F811  (the fixture imported above)
    capsys,
) -> None:
    p = personas
    # In review with checks still running and no approvals: only the break-glass clears it.
    release = submitted_release(p.project, p.requester, version="1.0.1")
    assert not decide(release).cleared
    bg = break_glass_request(
        release=release, actor=p.actor("requester"), reason="tickets leak", incident="INC-7"
    )
    break_glass_confirm(break_glass=bg, actor=p.actor("security"), reason="fix reviewed")

    file = fetch(p, tmp_path, release)
    levels = statement_of(json.loads(file.read_text()))["predicate"]["verifiedLevels"]
    assert levels == ["RELEASEGATE_CLEARED_PRODUCTION", "RELEASEGATE_BREAK_GLASS"]
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 0, said
    assert verify(capsys, key_file, release.artifact_digest, file, environment="staging")[0] == 1
