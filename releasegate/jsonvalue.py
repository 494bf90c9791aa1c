"""The type of what a client sends: a value as parsed from JSON.

The API hands a body's fields to the services as sent (its serializers describe them for the
schema). A service takes such a field as a `JSONValue` and validates it, naming the field when it
is not what it must be, before it uses it as the str (or role, or date) it then is; the checker
sees that no unvalidated value reaches a model or the audit trail.
"""

from collections.abc import Mapping, Sequence
from typing import TypeAlias

# Read-only containers: a service only reads what it is given, and a caller's dict[str, str] or
# list[str] is one too.
JSONValue: TypeAlias = (
    str | int | float | bool | None | Sequence["JSONValue"] | Mapping[str, "JSONValue"]
)
JSONObject: TypeAlias = dict[str, JSONValue]
