"""What the compiler may reference: the profile table, event tables, column types, sensitivity.

Built by the project loader from `audience.toml` plus the warehouse's information schema; the
DSL package only reads it, so the compiler can be used (and tested) without a warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Column kinds the type checker reasons about; raw warehouse types map onto these.
STRING, NUMBER, BOOLEAN, DATE, TIMESTAMP, TIMESTAMPTZ, OTHER = (
    "string", "number", "boolean", "date", "timestamp", "timestamptz", "other",
)

_KIND_BY_PREFIX = (
    (("timestamp with time zone", "timestamptz", "timestamp_tz", "timestamp_ltz"), TIMESTAMPTZ),
    (("timestamp", "datetime"), TIMESTAMP),
    (("date",), DATE),
    (("bool",), BOOLEAN),
    (("int", "bigint", "smallint", "tinyint", "hugeint", "ubigint", "uinteger", "usmallint",
      "utinyint", "uhugeint", "decimal", "numeric", "double", "real", "float", "number"), NUMBER),
    (("varchar", "text", "char", "string", "character", "bpchar", "uuid", "citext"), STRING),
)


def kind_of(raw_type: str) -> str:
    """Map a warehouse type name (any dialect's spelling) to a checker kind."""
    t = raw_type.strip().lower()
    if t in ("timestamp with time zone", "timestamptz"):
        return TIMESTAMPTZ
    for prefixes, kind in _KIND_BY_PREFIX:
        if t.startswith(prefixes):
            return kind
    return OTHER


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str
    raw_type: str = ""


@dataclass(frozen=True, slots=True)
class SensitiveValues:
    """Listed values of one column that may never be targeted (e.g. purchases.category=pharmacy)."""

    values: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class Table:
    """A warehouse table: `name` may be schema-qualified ("crm.fans")."""

    name: str
    columns: dict[str, Column]
    sensitive: str | None = None  # a category when the whole table is sensitive
    sensitive_columns: dict[str, str] = field(default_factory=dict)  # column -> category
    sensitive_values: dict[str, tuple[SensitiveValues, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSource:
    name: str
    table: Table
    key: str
    timestamp: str


@dataclass(frozen=True)
class Catalog:
    profile: Table
    profile_key: str
    events: dict[str, EventSource]
    # Profile attributes the consent filter needs (names of profile columns, may be None).
    country_column: str | None = None
    birth_date_column: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)  # identifier type -> column

    def event(self, name: str) -> EventSource | None:
        return self.events.get(name)
