"""The dialect check: is rendered SQL something the target engine accepts?

sqlglot parsing its own output back proves little (sqlglot is not the engine), so the check is
two-fold: the text parses with sqlglot's parser *in the target dialect*, and it holds none of
the constructs the engine's traits forbid (another engine's syntax that sqlglot tolerates).
Engines that run here are checked for real by executing the SQL in the tests.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot.errors import ParseError

from engines.traits import traits


def dialect_problems(sql: str, dialect: str) -> list[str]:
    """Why `sql` would not run on `dialect`; empty when it passes."""
    problems: list[str] = []
    flat = re.sub(r"\s+", " ", sql).upper()
    problems += [f"{dialect} does not accept `{construct}`" for construct in traits(dialect).forbidden
                 if construct in flat]
    try:
        sqlglot.parse(sql, read=dialect)
    except ParseError as err:
        problems.append(f"does not parse as {dialect}: {str(err).splitlines()[0]}")
    return problems
