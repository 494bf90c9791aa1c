"""The identifiers the gate is asked about, matched whole.

Every pattern is anchored with `\\A` and `\\Z` and applied with `fullmatch`: `$` would also accept
a final newline (`"sha256:<hex>\\n"` then escaped a digest veto on SQLite and overflowed the column
on PostgreSQL). The classes are ASCII only, so no Unicode look-alike passes, and hex digests are
lower-case (as OCI and in-toto write them): anything else is refused, never normalised, so one
artifact has one spelling.
"""

import re
from typing import Any

# A database id larger than this cannot exist: asking for one is a 404, not a database error.
MAX_ID = 2**63 - 1

DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
VERSION_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+\-]{0,99}\Z")
SLUG_RE = re.compile(r"\A[a-z0-9][a-z0-9\-]{0,63}\Z")
ENVIRONMENT_RE = re.compile(r"\A[a-z0-9][a-z0-9_\-]{0,63}\Z")
# An SPDX license id or LicenseRef (letters, digits, '.', '-', '+').
LICENSE_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.\-+]{0,99}\Z")

DIGEST_HELP = "must be sha256: followed by 64 lowercase hex digits"
VERSION_HELP = "1 to 100 letters, digits, '.', '_', '+' or '-'"
SLUG_HELP = "lowercase letters, digits and dashes, up to 64"
ENVIRONMENT_HELP = "lowercase letters, digits, '_' or '-', up to 64"


def matches(pattern: re.Pattern[str], value: Any) -> bool:
    """Whether `value` is a string that `pattern` matches whole."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None
