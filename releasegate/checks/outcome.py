from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What a check concludes: `passed`, `failed`, `error` or (still waiting on CI) `pending`,
    a one-line summary, and details recording every reason."""

    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    # Set when the result must be computed again after that moment (a waiver it used ends).
    valid_until: datetime | None = None
