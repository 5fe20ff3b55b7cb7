"""`audience.toml`: typed configuration objects, with every error naming the file and key.

Validation is table-driven: `SCHEMA` names every key of the file once, with its TOML type,
whether it is required and any further rule (a range, a set of values, the form of a name).
Parsing a table keeps only the values that passed, so the builders of the dataclasses never
see a wrong type and each wrong value gives exactly one diagnostic, on the line of its key.
Defaults have one home, the dataclasses' fields: a key left out is simply not passed.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from dsl.diagnostics import Diagnostic, Span, did_you_mean
from exporters.vocabulary import FORMATS, IDENTIFIER_TYPES

CONFIG_FILE = "audience.toml"
DESTINATION_TYPES = ("s3", "grpc", "file")
BASES = ("opt_in", "opt_out")
DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "spark", "databricks", "trino", "redshift")
DEFAULT_STATE_URL = "sqlite:///.audience/state.db"
OUTSIDE_PROJECT = "E408"  # a definition or a path that leads out of the project folder
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}\Z")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


@dataclass(frozen=True)
class WarehouseConfig:
    url: str
    dialect: str


@dataclass(frozen=True)
class ProfilesConfig:
    table: str
    key: str
    country: str | None = None
    birth_date: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    column_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventConfig:
    name: str
    table: str
    key: str
    timestamp: str
    column_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SensitiveValueRule:
    table: str
    column: str
    values: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class SensitiveConfig:
    columns: dict[str, str] = field(default_factory=dict)  # "table.column" -> category
    values: tuple[SensitiveValueRule, ...] = ()
    tables: dict[str, str] = field(default_factory=dict)  # table -> category
    categories: tuple[str, ...] = ()  # project-defined sensitive categories (extensions)


@dataclass(frozen=True)
class ConsentConfig:
    table: str
    suppression_table: str | None = None
    minimum_age: int = 16
    default_basis: str = "opt_in"
    basis: dict[str, str] = field(default_factory=dict)
    tcf_vendor_id: int | None = None


@dataclass(frozen=True)
class DestinationConfig:
    name: str
    type: str
    format: str
    identifiers: tuple[str, ...]
    purposes: tuple[str, ...]
    min_size: int = 100
    max_change: float = 0.5
    uri: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    target: str | None = None
    token_env: str | None = None
    tls: bool = True
    ca_cert: str | None = None
    deadline_seconds: float = 30.0
    batch_size: int = 5000
    rows_per_file: int = 1_000_000


@dataclass(frozen=True)
class StateConfig:
    url: str = DEFAULT_STATE_URL


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    file: Path
    name: str
    audiences_dir: Path
    warehouse: WarehouseConfig
    profiles: ProfilesConfig
    events: dict[str, EventConfig]
    sensitive: SensitiveConfig
    consent: ConsentConfig | None
    destinations: dict[str, DestinationConfig]
    state: StateConfig

    def resolve(self, path: str) -> Path:
        """Relative paths in audience.toml are relative to the folder that holds it."""
        return resolve_path(path, self.root)

    def file_uri_path(self, uri: str) -> Path:
        """`file:///abs` is absolute; `file:rel/path` is relative to the project folder."""
        return resolve_path(file_uri_rest(uri), self.root)

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def resolve_path(path: str, root: Path) -> Path:
    """A path of audience.toml: absolute (or `~`) as written, otherwise under `root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def file_uri_rest(uri: str) -> str:
    """The path of a `file:` uri as written: `file:///abs` -> `/abs`, `file:rel` and
    `file://rel` -> `rel` (both spellings of a relative path are accepted)."""
    rest = uri[len("file:") :]
    return rest[2:] if rest.startswith("//") else rest


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink followed, lies in the folder `root`."""
    return path.resolve().is_relative_to(root.resolve())


def state_url_problem(url: str) -> str | None:
    """Why `[state] url` cannot name a state store, or None (one rule for `check` and the store)."""
    if url.startswith("sqlite:///"):
        return None if url[len("sqlite:///") :].strip() else 'names no file; write "sqlite:///path/state.db"'
    if url.startswith(("postgresql://", "postgres://")):
        return None
    return f'"{url.split(":", 1)[0]}:..." is not supported; use sqlite:///path or postgresql://...'


class ConfigError(Exception):
    """Raised with every diagnostic found in audience.toml."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


# ---- where a key is written --------------------------------------------------------------
_PATH_PART = re.compile(r'"((?:[^"\\]|\\.)*)"|([^."\[\]]+)|\[\d+\]')
_HEADER = re.compile(r"""^\s*\[\[?\s*[A-Za-z0-9_"'.\s-]+\]\]?\s*(#.*)?$""")


def _join(path: str, key: str) -> str:
    """A dotted key path as TOML writes it: keys that are not bare are quoted."""
    part = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
    return f"{path}.{part}" if path else part


def _split(path: str) -> list[str]:
    return [json.loads(f'"{m.group(1)}"') if m.group(1) is not None else m.group(2)
            for m in _PATH_PART.finditer(path) if m.group(1) is not None or m.group(2)]


class ConfigReporter:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.diags: list[Diagnostic] = []

    def locate(self, path: str) -> Span:
        """Best-effort line of a dotted key: its [section] header, then the key inside it (the
        header itself when the key is not written there, e.g. a missing required key)."""
        parts = _split(path)
        for depth in range(len(parts), 0, -1):
            header = "[" + ".".join(_join("", p) for p in parts[:depth]) + "]"
            for i, line in enumerate(self.lines):
                if line.split("#", 1)[0].strip() in (header, f"[{header}]"):
                    rest = parts[depth:]
                    if not rest:
                        return Span(i + 1, 1, i + 1, len(line) + 1)
                    return self._find_key(rest[0], i + 1) or Span(i + 1, 1, i + 1, len(line) + 1)
        return (self._find_key(parts[0], 0) if parts else None) or Span(1, 1, 1, 1)

    def _find_key(self, key: str, start: int) -> Span | None:
        """The key's first line from `start` up to the next [section] header."""
        pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*[=.]|[{{,]\s*"?{re.escape(key)}"?\s*=')
        for i in range(start, len(self.lines)):
            if _HEADER.match(self.lines[i]):
                return None
            m = pattern.search(self.lines[i])
            if m:
                col = self.lines[i].find(key, m.start()) + 1
                return Span(i + 1, col, i + 1, col + len(key))
        return None

    def error(self, path: str, message: str, code: str = "E406") -> None:
        self.diags.append(Diagnostic(self.file, self.locate(path), code, f"{path}: {message}"))


# ---- the schema: one typed entry per key ---------------------------------------------------
_BAD = object()  # a value already reported: the key is left out of the parsed table
Rule = Callable[[Any], str | None]  # a further constraint: why the value is wrong, or None


def _toml_type(value: Any) -> str:
    """The TOML type of a parsed value, as a message names it."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (list, "an array"), (dict, "a table"), (datetime, "a date-time"), (date, "a date"),
                       (time, "a time")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


@dataclass(frozen=True)
class _Key:
    """One key of audience.toml. `attr` names the dataclass field when it differs from the key;
    `only` lists the destination types the key applies to (empty: every type)."""

    required: bool = False
    attr: str | None = None
    only: tuple[str, ...] = ()

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        """The value to keep, or _BAD after reporting exactly one diagnostic for it."""
        raise NotImplementedError


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("true or false", lambda v: isinstance(v, bool)),
}


@dataclass(frozen=True)
class _Scalar(_Key):
    kind: str = "string"
    choices: tuple[str, ...] = ()
    rule: Rule | None = None

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        wanted, test = _KINDS[self.kind]
        if not test(value):
            rep.error(path, f"must be {wanted}, not {_toml_type(value)}")
            return _BAD
        if isinstance(value, float) and not math.isfinite(value):
            rep.error(path, f"must be a finite number, not {value}")
            return _BAD
        if self.choices and value not in self.choices:
            rep.error(path, f'unknown value "{value}"; use one of {", ".join(self.choices)}')
            return _BAD
        if self.rule is not None and (problem := self.rule(value)) is not None:
            rep.error(path, problem)
            return _BAD
        return float(value) if self.kind == "number" else value


@dataclass(frozen=True)
class _Strings(_Key):
    """An array of strings, kept as a tuple; `what` names an item in messages."""

    choices: tuple[str, ...] = ()
    what: str = "value"
    empty: str | None = None  # the message when an empty array is refused
    rule: Rule | None = None

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        if not isinstance(value, list):
            hint = f" (write {json.dumps([value])})" if isinstance(value, str) else ""
            rep.error(path, f"must be an array of strings, not {_toml_type(value)}{hint}")
            return _BAD
        if not all(isinstance(v, str) for v in value):
            i, item = next((i, v) for i, v in enumerate(value) if not isinstance(v, str))
            rep.error(path, f"must be an array of strings; item {i + 1} is {_toml_type(item)}")
            return _BAD
        problems = [f'unknown {self.what} "{v}"; use one of {", ".join(self.choices)}'
                    for v in value if self.choices and v not in self.choices]
        problems += [f'"{v}" is listed twice' for i, v in enumerate(value) if v in value[:i]]
        problems += [p for v in value if self.rule is not None and (p := self.rule(v)) is not None]
        if not value and self.empty:
            problems.append(self.empty)
        for problem in problems:
            rep.error(path, problem)
        return _BAD if problems else tuple(value)


@dataclass(frozen=True)
class _Map(_Key):
    """A table of free keys, each holding the same kind of value."""

    value: _Scalar = _Scalar()
    key_rule: Rule | None = None

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        if not isinstance(value, dict):
            rep.error(path, f"must be a table, not {_toml_type(value)}")
            return _BAD
        out: dict[str, Any] = {}
        for key, item in value.items():
            where = _join(path, key)
            if self.key_rule is not None and (problem := self.key_rule(key)) is not None:
                rep.error(where, problem)
            elif (parsed := self.value.parse(rep, where, item)) is not _BAD:
                out[key] = parsed
        return out


@dataclass(frozen=True)
class _Table(_Key):
    """A table of known keys: unknown keys, missing required keys and wrong values reported."""

    keys: Mapping[str, _Key] = field(default_factory=dict)
    what: str = "key"
    list_keys: bool = False  # name every known key when an unknown one has no close match

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        if not isinstance(value, dict):
            rep.error(path, f"must be a table, not {_toml_type(value)}")
            return _BAD
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = self.keys.get(key)
            if spec is None:
                hint = did_you_mean(key, self.keys)
                if not hint and self.list_keys:
                    hint = f"; use one of {', '.join(self.keys)}"
                rep.error(_join(path, key), f'unknown {self.what} "{key}"{hint}')
            elif (parsed := spec.parse(rep, _join(path, key), item)) is not _BAD:
                out[key] = parsed
        for key, spec in self.keys.items():
            if spec.required and key not in value:
                rep.error(_join(path, key),
                          f"missing required section [{key}]" if self.what == "section" else "missing required key")
        return out


@dataclass(frozen=True)
class _Named(_Key):
    """A table of named sections, `[events.NAME]` or `[destinations.NAME]`."""

    table: _Table = _Table()
    what: str = "event"

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        if not isinstance(value, dict):
            rep.error(path, f"must be a table of [{path}.NAME] sections, not {_toml_type(value)}")
            return _BAD
        out: dict[str, Any] = {}
        for name, section in value.items():
            where = _join(path, name)
            good = _NAME.match(name) is not None
            if not good:
                rep.error(where, f'{self.what} name "{name}" must match [a-z_][a-z0-9_]*')
            parsed = self.table.parse(rep, where, section)
            if good and parsed is not _BAD:
                out[name] = parsed
        return out


@dataclass(frozen=True)
class _Rows(_Key):
    """An array of tables of one shape, e.g. `[sensitive] values = [{...}, ...]`."""

    table: _Table = _Table()

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        if not isinstance(value, list):
            rep.error(path, f"must be an array of tables, not {_toml_type(value)}")
            return _BAD
        if not all(isinstance(item, dict) for item in value):
            i, item = next((i, v) for i, v in enumerate(value) if not isinstance(v, dict))
            rep.error(path, f"must be an array of tables; item {i + 1} is {_toml_type(item)}")
            return _BAD
        rows = [self.table.parse(rep, f"{path}[{i + 1}]", item) for i, item in enumerate(value)]
        return [row for row in rows if row is not _BAD]


@dataclass(frozen=True)
class _Refused(_Key):
    """A key that must never be written, with the reason (a secret in the file)."""

    reason: str = ""

    def parse(self, rep: ConfigReporter, path: str, value: Any) -> Any:
        rep.error(path, self.reason)
        return _BAD


def _at_least(low: int, what: str) -> Rule:
    return lambda v: None if v >= low else f"must be at least {low} ({what})"


def _named(what: str) -> Rule:
    pattern = _TABLE if what == "table" else _COLUMN
    return lambda v: None if pattern.match(v) else f'"{v}" is not a valid {what} name'


def _country(code: str) -> str | None:
    if code == "EEA" or re.fullmatch(r"[A-Z]{2}", code):
        return None
    return f'"{code}" is not an ISO 3166-1 alpha-2 code or the group EEA'


def _qualified_column(value: str) -> str | None:
    table, _, column = value.rpartition(".")
    if table and _TABLE.match(table) and _COLUMN.match(column):
        return None
    return f'"{value}" must be written "table.column"'


def _warehouse_url(url: str) -> str | None:
    if url.split(":", 1)[0].lower() == "duckdb" and not url.startswith("duckdb://"):
        return 'a DuckDB url is written "duckdb:///relative/path.duckdb" or "duckdb:////absolute/path.duckdb"'
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        return f'"{url}" is not a url; write duckdb:///path.duckdb, postgresql://... or sc://host:port'
    return None


def _fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be a fraction above 0 and at most 1 (0.5 = 50%)"


_STR = _Scalar()
_REQUIRED_STR = _Scalar(required=True)
_COLUMN_NAME = _Scalar(rule=_named("column"))
_COLUMN_TYPES = _Map(attr="column_types", key_rule=_named("column"))
_GRPC, _DROPS = ("grpc",), ("s3", "file")

_PROJECT = _Table(required=True, keys={"name": _REQUIRED_STR, "audiences": _STR})
_WAREHOUSE = _Table(required=True, keys={
    "url": _Scalar(required=True, rule=_warehouse_url),
    "dialect": _Scalar(choices=DIALECTS),
})
_PROFILES = _Table(required=True, keys={
    "table": _Scalar(required=True, rule=_named("table")),
    "key": _Scalar(required=True, rule=_named("column")),
    "country": _COLUMN_NAME,
    "birth_date": _COLUMN_NAME,
    "identifiers": _Table(what="identifier type", list_keys=True, keys=dict.fromkeys(IDENTIFIER_TYPES, _COLUMN_NAME)),
    "columns": _COLUMN_TYPES,
})
_EVENT = _Table(keys={
    "table": _Scalar(required=True, rule=_named("table")),
    "key": _Scalar(required=True, rule=_named("column")),
    "timestamp": _Scalar(required=True, rule=_named("column")),
    "columns": _COLUMN_TYPES,
})
_SENSITIVE = _Table(keys={
    "columns": _Map(key_rule=_qualified_column),
    "values": _Rows(table=_Table(keys={
        "column": _Scalar(required=True, rule=_qualified_column),
        "values": _Strings(required=True, empty="must list at least one value"),
        "category": _REQUIRED_STR,
    })),
    "tables": _Map(key_rule=_named("table")),
    "categories": _Strings(),
})
_CONSENT = _Table(keys={
    "table": _Scalar(required=True, rule=_named("table")),
    "suppression_table": _Scalar(rule=_named("table")),
    "minimum_age": _Scalar(kind="integer", rule=lambda v: None if 0 <= v <= 120 else "must be between 0 and 120"),
    "default_basis": _Scalar(choices=BASES),
    "basis": _Map(value=_Scalar(choices=BASES), key_rule=_country),
    "tcf_vendor_id": _Scalar(kind="integer", rule=lambda v: None if 1 <= v <= 0xFFFF
                             else "must be an IAB vendor id between 1 and 65535"),
})
_DESTINATION = _Table(keys={
    "type": _Scalar(required=True, choices=DESTINATION_TYPES),
    "format": _Scalar(required=True, choices=FORMATS),
    "identifiers": _Strings(required=True, choices=IDENTIFIER_TYPES, what="identifier type",
                            empty="must name at least one identifier type to export"),
    "purposes": _Strings(required=True, empty="must name at least one purpose (a profile goes out only when every "
                         "purpose is permitted, so an empty list would let every profile out)"),
    "min_size": _Scalar(kind="integer", rule=_at_least(1, "the smallest audience that may be exported")),
    "max_change": _Scalar(kind="number", rule=_fraction),
    "uri": _Scalar(only=_DROPS),
    "endpoint_url": _Scalar(only=("s3",)),
    "region": _Scalar(only=("s3",)),
    "sse": _Scalar(only=("s3",), choices=("AES256", "aws:kms")),
    "kms_key_id": _Scalar(only=("s3",)),
    "target": _Scalar(only=_GRPC),
    "token_env": _Scalar(only=_GRPC),
    "token": _Refused(reason="secrets are never written in the file; name an environment variable in token_env"),
    "tls": _Scalar(kind="boolean", only=_GRPC),
    "ca_cert": _Scalar(only=_GRPC),
    "deadline_seconds": _Scalar(kind="number", only=_GRPC,
                                rule=lambda v: None if v > 0 else "must be a number of seconds above 0"),
    "batch_size": _Scalar(kind="integer", only=_GRPC, rule=_at_least(1, "identifiers per gRPC batch")),
    "rows_per_file": _Scalar(kind="integer", only=_DROPS, rule=_at_least(1, "rows per file part")),
})
_STATE = _Table(keys={"url": _Scalar(required=True, rule=state_url_problem)})

SCHEMA = _Table(what="section", keys={
    "project": _PROJECT,
    "warehouse": _WAREHOUSE,
    "profiles": _PROFILES,
    "events": _Named(what="event", table=_EVENT),
    "sensitive": _SENSITIVE,
    "consent": _CONSENT,
    "destinations": _Named(what="destination", table=_DESTINATION),
    "state": _STATE,
})


# ---- loading -------------------------------------------------------------------------------
def load_config(project_dir: Path) -> ProjectConfig:
    """Read and validate `<project_dir>/audience.toml`; raise ConfigError with every problem."""
    file = project_dir / CONFIG_FILE
    rel = CONFIG_FILE
    if not file.is_file():
        problem = f"no {CONFIG_FILE} in {project_dir} (run `audience init DIR` to create a project)"
        raise ConfigError([Diagnostic(rel, Span(1, 1, 1, 1), "E406", problem)])
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problem = f"{file} is not valid UTF-8 ({err.reason} at byte {err.start})"
        raise ConfigError([Diagnostic(rel, Span(1, 1, 1, 1), "E406", problem)]) from None
    except OSError as err:
        raise ConfigError([Diagnostic(rel, Span(1, 1, 1, 1), "E406", f"cannot read {file}: {err.strerror}")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"at line (\d+), column (\d+)", str(err))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        raise ConfigError(
            [Diagnostic(rel, Span(line, col, line, col + 1), "E406", f"invalid TOML: {str(err).split(' (at line')[0]}")]
        ) from None
    rep = ConfigReporter(rel, text)
    config = _build(rep, raw, project_dir.resolve(), file)
    if rep.diags or config is None:
        raise ConfigError(rep.diags)
    return config


def _make(cls: Any, table: _Table, values: dict[str, Any] | None, **extra: Any) -> Any:
    """`cls` from the parsed keys of one table; None when a required key is missing or wrong
    (already reported). Keys left out take the dataclass's defaults."""
    if values is None or any(spec.required and key not in values for key, spec in table.keys.items()):
        return None
    return cls(**extra, **{table.keys[key].attr or key: value for key, value in values.items()})


def _build(rep: ConfigReporter, raw: dict[str, Any], root: Path, file: Path) -> ProjectConfig | None:
    data = SCHEMA.parse(rep, "", raw)
    project = data.get("project", {})
    warehouse = _warehouse(rep, data.get("warehouse"), raw.get("warehouse"))
    profiles = _make(ProfilesConfig, _PROFILES, data.get("profiles"))
    events = {name: event for name, section in data.get("events", {}).items()
              if (event := _make(EventConfig, _EVENT, section, name=name)) is not None}
    sensitive = _sensitive(data.get("sensitive", {}))
    consent = _make(ConsentConfig, _CONSENT, data["consent"]) if "consent" in data else None
    destinations = {
        name: dest for name, section in data.get("destinations", {}).items()
        if (dest := _destination(rep, name, section, raw["destinations"][name], root)) is not None
    }
    state = _make(StateConfig, _STATE, data.get("state")) if "state" in raw else StateConfig()
    audiences_dir = _audiences_dir(rep, project.get("audiences"), root)
    if isinstance(raw.get("destinations"), dict) and raw["destinations"] and "consent" not in raw:
        rep.error(
            "consent",
            "destinations are declared but there is no [consent] section; "
            "nothing may be exported without the consent filter",
        )
    if rep.diags or warehouse is None or profiles is None or state is None:
        return None
    return ProjectConfig(
        root=root,
        file=file,
        name=project["name"],
        audiences_dir=audiences_dir,
        warehouse=warehouse,
        profiles=profiles,
        events=events,
        sensitive=sensitive,
        consent=consent,
        destinations=destinations,
        state=state,
    )


def dialect_of_url(url: str) -> str | None:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return {
        "duckdb": "duckdb",
        "postgresql": "postgres",
        "postgres": "postgres",
        "bigquery": "bigquery",
        "snowflake": "snowflake",
        "spark": "spark",
        "databricks": "databricks",
        "trino": "trino",
        "redshift": "redshift",
    }.get(scheme)


def _warehouse(rep: ConfigReporter, data: dict[str, Any] | None, raw: Any) -> WarehouseConfig | None:
    if data is None or "url" not in data:
        return None
    url = data["url"]
    dialect = data.get("dialect") or dialect_of_url(url)
    if dialect is None:
        if "dialect" not in raw:  # a wrong dialect was reported already
            rep.error(
                "warehouse.dialect",
                f'cannot tell the dialect from url "{url.split(":", 1)[0]}:..."; '
                f"set dialect to one of {', '.join(DIALECTS)}",
            )
        return None
    return WarehouseConfig(url=url, dialect=dialect)


def _audiences_dir(rep: ConfigReporter, written: str | None, root: Path) -> Path:
    """The folder of the definitions: it must lie inside the project, and exist when named."""
    folder = resolve_path(written or "audiences", root)
    if (written is not None or folder.exists()) and not is_inside(folder, root):
        rep.error("project.audiences", f'the audiences folder "{written or "audiences"}" leads outside the project '
                  f"folder (to {folder.resolve()}); definitions live inside the project", code=OUTSIDE_PROJECT)
    elif written is not None and not folder.is_dir():
        rep.error("project.audiences", f"there is no folder {folder}")
    return folder


def _sensitive(data: dict[str, Any]) -> SensitiveConfig:
    rules = tuple(SensitiveValueRule(table, column, row["values"], row["category"])
                  for row in data.get("values", ()) if {"column", "values", "category"} <= row.keys()
                  for table, column in [row["column"].rsplit(".", 1)])
    return SensitiveConfig(**{k: v for k, v in data.items() if k != "values"}, values=rules)


def _refused_identifiers(rep: ConfigReporter, path: str, fmt: object, identifiers: tuple[str, ...]) -> None:
    """Identifier types the format cannot carry (the hashing profiles say which, e.g. uid2 maps
    emails and phone numbers only)."""
    from exporters.hashing.profiles import PROFILES  # only here: exporters cost start-up time

    profile = PROFILES.get(fmt) if isinstance(fmt, str) else None
    for ident in identifiers:
        if profile is not None and not profile.accepts(ident):
            rep.error(f"{path}.identifiers", f"the {fmt} format does not accept {ident} identifiers")


def _destination(rep: ConfigReporter, name: str, s: dict[str, Any], raw: dict[str, Any],
                 root: Path) -> DestinationConfig | None:
    """Rules across the keys of one destination (the schema checked each key alone)."""
    path = _join("destinations", name)
    kind = s.get("type")
    for key in s:
        only = _DESTINATION.keys[key].only
        if kind is not None and only and kind not in only:
            rep.error(_join(path, key), f"applies only to {' and '.join(only)} destinations, not {kind}")
    needed = {"s3": ("uri", 'such as "s3://bucket/prefix/"'), "file": ("uri", 'such as "file:exports/NAME"'),
              "grpc": ("target", 'such as "127.0.0.1:50061"')}.get(str(kind))
    if needed and needed[0] not in raw:
        rep.error(_join(path, needed[0]), f"missing required key for a {kind} destination ({needed[1]})")
    uri = s.get("uri")
    if kind == "s3" and uri is not None and not uri.startswith("s3://"):
        rep.error(f"{path}.uri", 'an s3 destination needs a uri such as "s3://bucket/prefix/"')
    if kind == "file" and uri is not None and (problem := _file_uri_problem(uri, root)) is not None:
        rep.error(f"{path}.uri", problem[1], code=problem[0])
    _refused_identifiers(rep, path, s.get("format"), s.get("identifiers", ()))
    return _make(DestinationConfig, _DESTINATION, s, name=name)


def _file_uri_problem(uri: str, root: Path) -> tuple[str, str] | None:
    """(code, message) when a file destination's uri is malformed, or relative and leaving the
    project folder (symlinks followed); an absolute file:///path may point anywhere."""
    if not uri.startswith("file:") or not file_uri_rest(uri).strip():
        return "E406", 'a file destination needs a uri such as "file:///abs/path" or "file:relative/path"'
    rest = file_uri_rest(uri)
    if Path(rest).expanduser().is_absolute():
        return None
    target = resolve_path(rest, root)
    if is_inside(target, root):
        return None
    return OUTSIDE_PROJECT, (f'"{uri}" leads outside the project folder (to {target.resolve()}); a relative path stays '
                             "inside the project, a folder elsewhere is written as an absolute uri, file:///path")
