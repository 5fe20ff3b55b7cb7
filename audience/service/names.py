"""Resource names of the planner API (AIP-122): parsing is strict, formatting is trivial.

A malformed name is the caller's mistake (INVALID_ARGUMENT); a well-formed name of something
that does not exist is NOT_FOUND. Keeping the two apart is why parsing lives here and lookup
does not.
"""

from __future__ import annotations

import re

from audience.service.errors import invalid_argument

AUDIENCE_ID = re.compile(r"[a-z_][a-z0-9_]*")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
ANY_AUDIENCE = "-"


def audience_name(audience: str) -> str:
    return f"audiences/{audience}"


def run_name(audience: str, run_id: str) -> str:
    return f"audiences/{audience}/runs/{run_id}"


def parse_audience_name(name: str, field: str = "name") -> str:
    """The audience id of ``audiences/{audience}``."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "audiences" and AUDIENCE_ID.fullmatch(parts[1]):
        return parts[1]
    raise invalid_argument(f'{field} must be "audiences/{{audience}}" with an audience name '
                           f"of lowercase letters, digits and _, got {name!r}", field)


def parse_parent(parent: str, field: str = "parent") -> str | None:
    """``audiences/{audience}`` → the id; ``audiences/-`` → None (every audience)."""
    if parent == f"audiences/{ANY_AUDIENCE}":
        return None
    return parse_audience_name(parent, field)


def parse_run_name(name: str, field: str = "name") -> tuple[str, str]:
    """(audience, run id) of ``audiences/{audience}/runs/{run}``."""
    parts = name.split("/")
    if (len(parts) == 4 and parts[0] == "audiences" and parts[2] == "runs"
            and AUDIENCE_ID.fullmatch(parts[1]) and RUN_ID.fullmatch(parts[3])):
        return parts[1], parts[3]
    raise invalid_argument(f'{field} must be "audiences/{{audience}}/runs/{{run}}", got {name!r}', field)
