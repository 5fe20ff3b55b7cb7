"""Warehouse-side hashing: sqlglot expressions that compute exactly what the Python path does.

Hashing inside DuckDB or PostgreSQL lets a large export stream already-hashed values out of
the warehouse (multi-threaded in DuckDB) instead of pulling raw identifiers into Python.
Only where the result is byte-identical to ``digest.py`` is an expression returned:

* email, maid and external_id for the ``duckdb`` and ``postgres`` dialects;
* never phones (libphonenumber's validity rules cannot be expressed in SQL) and never other
  dialects: ``sql_hashed_expression`` returns ``None`` and the caller hashes in Python.

Equivalences the expressions rely on (see ``normalize.py`` for the why):

* trim = ``TRIM`` with the six ASCII whitespace characters (``CHR(32) || CHR(9) ...``);
  ``google`` deletes them anywhere (``REGEXP_REPLACE`` in DuckDB, ``TRANSLATE`` in PG);
* lowercase = A-Z to a-z only: PostgreSQL ``TRANSLATE`` (its ``LOWER`` follows the database
  ctype); DuckDB ``LOWER`` for pure-ASCII text (``STRLEN = LENGTH``), else ``TRANSLATE``;
* the gmail rules rebuild ``SPLIT_PART`` local part and domain when the domain is named and
  the text has a single ``@``; validity ("exactly one @, non-empty local part, a dot in the
  domain") is one full regex match, ``[^@]+@[^@]*[.][^@]*``, on the normalized text;
* SHA-256 over the UTF-8 bytes: DuckDB ``sha256(varchar)`` hashes the UTF-8 bytes;
  PostgreSQL needs ``convert_to(x, 'UTF8')``. Base64 of the raw digest: DuckDB
  ``to_base64(unhex(...))``, PostgreSQL ``encode(..., 'base64')`` (44 characters, no newline).

Performance notes (DuckDB 2.0, measured): there is no common-subexpression elimination
inside ``CASE``, and ``TRANSLATE``/``TRIM`` cost several times ``LOWER``; the expressions
therefore guard the slow functions with cheap checks. DuckDB's ``sha256`` is slower per
value than Python's OpenSSL-backed hashlib; its advantage is running on every core.
"""

from __future__ import annotations

from sqlglot import exp

from exporters.hashing.normalize import WHITESPACE, ZERO_MAID
from exporters.hashing.profiles import (
    EMAIL,
    EXTERNAL_ID,
    MAID,
    PHONE,
    Encoding,
    MaidMode,
    Profile,
    get_profile,
)

SQL_DIALECTS: tuple[str, ...] = ("duckdb", "postgres")

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def sql_hashed_expression(kind: str, column: exp.Expression, fmt: str, dialect: str) -> exp.Expression | None:
    """An expression giving the same value (or NULL) as the Python path, or ``None``.

    ``None`` means "hash this identifier in Python": phones, and dialects other than
    ``duckdb``/``postgres``. Raises ``HashingConfigError`` for an unknown format or an
    identifier type the format refuses (as the Python path does).
    """
    profile = get_profile(fmt)
    profile.require(kind)
    if dialect not in SQL_DIALECTS or kind == PHONE:
        return None
    if kind == EMAIL:
        return _email(column, profile, dialect)
    if kind == MAID:
        return _maid(column, profile, dialect)
    if kind == EXTERNAL_ID:
        return _external_id(column, profile, dialect)
    return None


def _str(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _whitespace() -> exp.Expression:
    """The ASCII whitespace set as ``CHR(32) || CHR(9) || ...``.

    Spelled with ``CHR`` so the rendered SQL holds no raw control characters (a CR or VT
    inside a literal is easily mangled by tools that touch the SQL text); both engines fold
    the constant once per query.
    """
    chars: list[exp.Expression] = [_call("CHR", exp.Literal.number(ord(c))) for c in WHITESPACE]
    joined = chars[0]
    for char in chars[1:]:
        joined = exp.DPipe(this=joined, expression=char)
    return exp.Paren(this=joined)


def _trim_ws(value: exp.Expression) -> exp.Expression:
    return exp.Trim(this=value, expression=_whitespace())


def _translate(value: exp.Expression, source: exp.Expression, target: str) -> exp.Expression:
    return _call("TRANSLATE", value, source, _str(target))


def _split_part(value: exp.Expression, delimiter: str, index: int) -> exp.Expression:
    return _call("SPLIT_PART", value.copy(), _str(delimiter), exp.Literal.number(index))


def _like(value: exp.Expression, pattern: str) -> exp.Expression:
    return exp.Like(this=value.copy(), expression=_str(pattern))


def _text(value: exp.Expression) -> exp.Expression:
    return exp.cast(value, exp.DataType.Type.TEXT)


def _digest(value: exp.Expression, encoding: Encoding, dialect: str) -> exp.Expression:
    """SHA-256 of the UTF-8 bytes of ``value``, hex (lowercase) or base64 encoded."""
    if dialect == "duckdb":
        hex_digest = _call("SHA256", value.copy())
        if encoding is Encoding.HEX:
            return hex_digest
        return _call("TO_BASE64", _call("UNHEX", hex_digest))
    digest = _call("SHA256", _call("CONVERT_TO", value.copy(), _str("UTF8")))
    return _call("ENCODE", digest, _str("hex" if encoding is Encoding.HEX else "base64"))


def _is_ascii(value: exp.Expression, dialect: str) -> exp.Expression:
    """Byte length equals character length: the text is pure ASCII (cheap in both engines)."""
    if dialect == "duckdb":
        return exp.EQ(this=_call("STRLEN", value.copy()), expression=_call("LENGTH", value.copy()))
    return exp.EQ(this=_call("OCTET_LENGTH", value.copy()), expression=_call("CHAR_LENGTH", value.copy()))


def _trimmed(column: exp.Expression, dialect: str) -> exp.Expression:
    """Trim ASCII whitespace; DuckDB first checks (fast regex) whether there is any to trim."""
    if dialect != "duckdb":
        return _trim_ws(column.copy())
    has_edge_ws = _call("REGEXP_MATCHES", column.copy(), _str(r"^[\t-\r ]|[\t-\r ]$"))
    return exp.Case(ifs=[exp.If(this=has_edge_ws, true=_trim_ws(column.copy()))], default=column)


def _without_ws(column: exp.Expression, dialect: str) -> exp.Expression:
    """Delete ASCII whitespace anywhere (the ``google`` email rule)."""
    if dialect != "duckdb":
        return _call("TRANSLATE", column.copy(), _whitespace(), _str(""))
    has_ws = _call("REGEXP_MATCHES", column.copy(), _str(r"[\t-\r ]"))
    removed = _call("REGEXP_REPLACE", column.copy(), _str(r"[\t-\r ]"), _str(""), _str("g"))
    return exp.Case(ifs=[exp.If(this=has_ws, true=removed)], default=column.copy())


def _ascii_lower(raw: exp.Expression, cleaned: exp.Expression, dialect: str) -> exp.Expression:
    """A-Z to a-z on ``cleaned`` (``raw`` with ASCII whitespace removed: same ASCII-ness).

    PostgreSQL always uses TRANSLATE (``LOWER`` depends on the database ctype). DuckDB's
    TRANSLATE is slow, and its ``LOWER`` is locale-free, so ASCII text goes through LOWER.
    """
    translated = _translate(cleaned.copy(), _str(_UPPER), _LOWER)
    if dialect != "duckdb":
        return translated
    return exp.Case(
        ifs=[exp.If(this=_is_ascii(raw, dialect), true=_call("LOWER", cleaned.copy()))],
        default=translated,
    )


def _full_match(value: exp.Expression, pattern: str, dialect: str) -> exp.Expression:
    if dialect == "duckdb":
        return _call("REGEXP_FULL_MATCH", value.copy(), _str(pattern))
    return exp.RegexpLike(this=value.copy(), expression=_str(f"^{pattern}$"))


def _gmail_normalized(lowered: exp.Expression, profile: Profile) -> exp.Expression:
    """Apply the profile's gmail rule to the local part when the domain is one it names."""
    if not profile.gmail_domains:
        return lowered
    local = _split_part(lowered, "@", 1)
    if profile.gmail_drop_plus_tag:
        local = _split_part(local, "+", 1)
    local = exp.Replace(this=local, expression=_str("."), replacement=_str(""))
    domain = _split_part(lowered, "@", 2)
    is_gmail = exp.and_(
        exp.In(this=domain, expressions=[_str(d) for d in sorted(profile.gmail_domains)]),
        exp.not_(_like(lowered, "%@%@%")),
    )
    rebuilt = exp.DPipe(this=exp.DPipe(this=local, expression=_str("@")), expression=domain.copy())
    return exp.Case(ifs=[exp.If(this=is_gmail, true=rebuilt)], default=lowered.copy())


def _email(column: exp.Expression, profile: Profile, dialect: str) -> exp.Expression:
    drop_all_ws = profile.email_drop_inner_whitespace
    cleaned = _without_ws(column, dialect) if drop_all_ws else _trimmed(column, dialect)
    normalized = _gmail_normalized(_ascii_lower(column, cleaned, dialect), profile)
    # Exactly one "@", a non-empty local part, a dot in the domain; after the gmail rule, so
    # a local part that the rule empties (".@gmail.com") is dropped too.
    valid = _full_match(normalized, "[^@]+@[^@]*[.][^@]*", dialect)
    return exp.Case(ifs=[exp.If(this=valid, true=_digest(normalized, profile.encoding, dialect))])


def _maid(column: exp.Expression, profile: Profile, dialect: str) -> exp.Expression:
    text = _text(column)
    lowered = _ascii_lower(text, _trimmed(text, dialect), dialect)
    valid = exp.and_(
        _full_match(lowered, _UUID_PATTERN, dialect),
        exp.NEQ(this=lowered.copy(), expression=_str(ZERO_MAID)),
    )
    if profile.maid is MaidMode.PLAIN:
        value: exp.Expression = lowered.copy()
    else:
        value = _digest(lowered, profile.encoding, dialect)
    return exp.Case(ifs=[exp.If(this=valid, true=value)])


def _external_id(column: exp.Expression, profile: Profile, dialect: str) -> exp.Expression:
    trimmed = _trimmed(_text(column), dialect)
    valid = exp.NEQ(this=trimmed.copy(), expression=_str(""))
    return exp.Case(ifs=[exp.If(this=valid, true=_digest(trimmed, profile.encoding, dialect))])
