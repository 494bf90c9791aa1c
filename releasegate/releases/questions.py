"""What a caller asks the gate: which release, and for a deploy to which environment.

One value from the views down to the one statement, so that the ways of naming a release are
spelt in one place.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateQuestion:
    """A release by id, by project and version, or the newest with an artifact digest
    (optionally in one project; one released to `environment` first), judged for a deploy to
    `environment` (None: to the release's own)."""

    release_id: int | None = None
    project_slug: str | None = None
    version: str | None = None
    artifact_digest: str | None = None
    environment: str | None = None

    @classmethod
    def of_gate_query(cls, params: Mapping[str, str]) -> "GateQuestion":
        """The question of a valid `GET /api/v1/gate` query (project and version, or digest and
        maybe project; maybe environment)."""
        by_digest = "digest" in params
        return cls(
            project_slug=params.get("project"),
            version=None if by_digest else params["version"],
            artifact_digest=params.get("digest"),
            environment=params.get("environment"),
        )

    def names(self) -> dict[str, Any]:
        """How it names the release: the identifiers it sets, without the environment."""
        named = {
            "release_id": self.release_id,
            "project_slug": self.project_slug,
            "version": self.version,
            "artifact_digest": self.artifact_digest,
        }
        return {name: value for name, value in named.items() if value is not None}
