"""SQL that makes the warehouse build the CSV lines of an export (``exporters.line_blocks``).

A line is one member's cells joined by ``,`` and ended by ``\\n``; an absent value is an empty
cell, and a member without any value gets ``NULL`` (no line). Hashed values never need CSV
quoting, so this is exactly the text ``csv.writer`` writes for the same cells (the writer's
guard refuses anything else). Built with sqlglot, so it reads the same in every dialect.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from exporters.hashing import sql_hashed_expression


def line_expression(cells: Sequence[exp.Expr], *, every_row: bool = False) -> exp.Expr:
    """``CASE WHEN any cell IS NOT NULL THEN CONCAT(c1, ',', ..., CHR(10)) END``.

    With ``every_row``, a row without any value still gets its (bare) line instead of NULL, so
    the writer's guard refuses it loudly: for lists where every row must be sent (a run's
    removals) rather than silently skipped.

    ``CONCAT`` with NULLs read as empty strings (sqlglot spells that out per dialect; DuckDB's
    and PostgreSQL's own ``CONCAT`` already do, and cost less than ``COALESCE`` and ``||``).
    ``cells`` should be plain column references: each appears twice, and warehouses do not
    share the work of a repeated expression (hash in a subquery, join the lines outside).
    """
    if not cells:
        raise ValueError("a line needs at least one cell")
    pieces: list[exp.Expr] = []
    for position, cell in enumerate(cells):
        if position:
            pieces.append(exp.Literal.string(","))
        pieces.append(cell.copy())
    pieces.append(exp.func("CHR", exp.Literal.number(10)))
    line = exp.Concat(expressions=pieces, coalesce=True, safe=True)
    if every_row:
        return line
    present = exp.or_(*(exp.Not(this=exp.Is(this=cell.copy(), expression=exp.Null())) for cell in cells))
    return exp.Case(ifs=[exp.If(this=present, true=line)])


def lines_select(source: exp.Expr, columns: Sequence[str], order_by: Sequence[str] = ()) -> exp.Select:
    """One line per row of ``source`` (a table or subquery with an alias) from ``columns``; a row
    without any value gets no line."""
    line = line_expression([exp.column(name) for name in columns])
    return _ordered(exp.select(exp.alias_(line, "line")).from_(source), order_by)


def hashed_lines_select(
    source: exp.Expr, kinds: Sequence[str], fmt: str, dialect: str, *, order_by: Sequence[str] = ()
) -> exp.Select | None:
    """Lines of identifiers hashed by the warehouse: column ``kind`` of ``source`` holds the raw
    value of each identifier type; ``None`` when some type cannot be hashed in SQL exactly
    (phones, dialects without expressions) — then hash in Python instead."""
    hashed: list[exp.Expr] = []
    for position, kind in enumerate(kinds):
        expression = sql_hashed_expression(kind, exp.column(kind), fmt, dialect)
        if expression is None:
            return None
        hashed.append(exp.alias_(expression, f"h{position}"))
    inner = exp.select(*hashed, *(exp.column(name) for name in order_by)).from_(source)
    cells = [f"h{position}" for position in range(len(kinds))]
    return lines_select(inner.subquery("hashed"), cells, order_by)


def raw_text_select(source: exp.Expr, kinds: Sequence[str], *, order_by: Sequence[str] = ()) -> exp.Select:
    """One text column per identifier type: column ``kind`` of ``source`` as it is stored, for the
    native encoder to normalise, hash and join (``exporters.line_blocks.encoded_line_blocks``).
    Cast to text the way the Python path reads other types (decimal ints, hyphenated UUIDs)."""
    text = exp.DataType.Type.TEXT
    columns = [exp.alias_(exp.cast(exp.column(kind), text), f"r{at}") for at, kind in enumerate(kinds)]
    return _ordered(exp.select(*columns).from_(source), order_by)


def _ordered(select: exp.Select, order_by: Sequence[str]) -> exp.Select:
    return select.order_by(*(exp.column(name) for name in order_by)) if order_by else select
