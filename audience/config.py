"""`audience.toml`: typed configuration objects, with every error naming the file and key.

Validation is table-driven (`_Section`), so unknown keys, missing keys and wrong types are
reported uniformly, all at once, with the line of the offending key in the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.diagnostics import Diagnostic, Span, did_you_mean

CONFIG_FILE = "audience.toml"
DESTINATION_TYPES = ("s3", "grpc", "file")
FORMATS = ("sha256", "google", "meta", "uid2")
IDENTIFIER_TYPES = ("email", "phone", "maid", "external_id")
BASES = ("opt_in", "opt_out")
DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "spark", "databricks", "trino", "redshift")
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}\Z")


@dataclass(frozen=True)
class WarehouseConfig:
    url: str
    dialect: str


@dataclass(frozen=True)
class ProfilesConfig:
    table: str
    key: str
    country: str | None
    birth_date: str | None
    identifiers: dict[str, str]
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
    url: str


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
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def file_uri_path(self, uri: str) -> Path:
        """`file:///abs` is absolute; `file:rel/path` is relative to the project folder."""
        rest = uri[len("file:") :]
        if rest.startswith("//"):
            rest = rest[2:]
        return self.resolve(rest)

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


class ConfigError(Exception):
    """Raised with every diagnostic found in audience.toml."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


# ---- table-driven validation -------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    types: tuple[type, ...]
    required: bool = False
    choices: tuple[str, ...] = ()


_STR, _INT, _NUM, _BOOL = (str,), (int,), (int, float), (bool,)

_SECTIONS: dict[str, dict[str, _Key]] = {
    "project": {"name": _Key(_STR, True), "audiences": _Key(_STR)},
    "warehouse": {"url": _Key(_STR, True), "dialect": _Key(_STR, choices=DIALECTS)},
    "profiles": {
        "table": _Key(_STR, True),
        "key": _Key(_STR, True),
        "country": _Key(_STR),
        "birth_date": _Key(_STR),
        "identifiers": _Key((dict,)),
        "columns": _Key((dict,)),
    },
    "event": {
        "table": _Key(_STR, True),
        "key": _Key(_STR, True),
        "timestamp": _Key(_STR, True),
        "columns": _Key((dict,)),
    },
    "sensitive": {
        "columns": _Key((dict,)),
        "values": _Key((list,)),
        "tables": _Key((dict,)),
        "categories": _Key((list,)),
    },
    "consent": {
        "table": _Key(_STR, True),
        "suppression_table": _Key(_STR),
        "minimum_age": _Key(_INT),
        "default_basis": _Key(_STR, choices=BASES),
        "basis": _Key((dict,)),
        "tcf_vendor_id": _Key(_INT),
    },
    "destination": {
        "type": _Key(_STR, True, DESTINATION_TYPES),
        "format": _Key(_STR, True, FORMATS),
        "identifiers": _Key((list,), True),
        "purposes": _Key((list,), True),
        "min_size": _Key(_INT),
        "max_change": _Key(_NUM),
        "uri": _Key(_STR),
        "endpoint_url": _Key(_STR),
        "region": _Key(_STR),
        "sse": _Key(_STR, choices=("AES256", "aws:kms")),
        "kms_key_id": _Key(_STR),
        "target": _Key(_STR),
        "token_env": _Key(_STR),
        "tls": _Key(_BOOL),
        "ca_cert": _Key(_STR),
        "deadline_seconds": _Key(_NUM),
        "batch_size": _Key(_INT),
        "rows_per_file": _Key(_INT),
    },
    "state": {"url": _Key(_STR, True)},
}
_TOP = {
    "project": True,
    "warehouse": True,
    "profiles": True,
    "events": False,
    "sensitive": False,
    "consent": False,
    "destinations": False,
    "state": False,
}


class ConfigReporter:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.diags: list[Diagnostic] = []

    def locate(self, path: str) -> Span:
        """Best-effort line of a dotted key: find its [section] header, then the key below it."""
        parts = path.split(".")
        start = 0
        for depth in range(len(parts), 0, -1):
            header = "[" + ".".join(parts[:depth]) + "]"
            for i, line in enumerate(self.lines):
                if line.strip() == header:
                    start = i
                    rest = parts[depth:]
                    if not rest:
                        return Span(i + 1, 1, i + 1, len(line) + 1)
                    return self._find_key(rest[0], start)
        return self._find_key(parts[-1], 0)

    def _find_key(self, key: str, start: int) -> Span:
        pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=|[{{,]\s*"?{re.escape(key)}"?\s*=')
        for i in range(start, len(self.lines)):
            m = pattern.search(self.lines[i])
            if m:
                col = self.lines[i].find(key, m.start()) + 1
                return Span(i + 1, col, i + 1, col + len(key))
        return Span(1, 1, 1, 1)

    def error(self, path: str, message: str, code: str = "E406") -> None:
        self.diags.append(Diagnostic(self.file, self.locate(path), code, f"{path}: {message}"))


def _validate(rep: ConfigReporter, path: str, data: Any, schema: dict[str, _Key]) -> dict[str, Any]:
    if not isinstance(data, dict):
        rep.error(path, "must be a table")
        return {}
    for key, value in data.items():
        spec = schema.get(key)
        if spec is None:
            rep.error(f"{path}.{key}", f'unknown key "{key}"' + did_you_mean(key, schema))
        elif not isinstance(value, spec.types) or (isinstance(value, bool) and bool not in spec.types):
            names = " or ".join(t.__name__.replace("dict", "table").replace("list", "array") for t in spec.types)
            rep.error(f"{path}.{key}", f"must be a {names.replace('str', 'string').replace('int', 'integer')}")
        elif spec.choices and value not in spec.choices:
            rep.error(f"{path}.{key}", f'unknown value "{value}"; use one of {", ".join(spec.choices)}')
    for key, spec in schema.items():
        if spec.required and key not in data:
            rep.error(f"{path}.{key}", "missing required key")
    return data


def load_config(project_dir: Path) -> ProjectConfig:
    """Read and validate `<project_dir>/audience.toml`; raise ConfigError with every problem."""
    file = project_dir / CONFIG_FILE
    rel = CONFIG_FILE
    if not file.is_file():
        raise ConfigError(
            [
                Diagnostic(
                    rel,
                    Span(1, 1, 1, 1),
                    "E406",
                    f"no {CONFIG_FILE} in {project_dir} (run `audience init DIR` to create a project)",
                )
            ]
        )
    text = file.read_text(encoding="utf-8")
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


def _build(rep: ConfigReporter, raw: dict[str, Any], root: Path, file: Path) -> ProjectConfig | None:
    for key in raw:
        if key not in _TOP:
            rep.error(key, f'unknown section "{key}"' + did_you_mean(key, _TOP))
    for key, required in _TOP.items():
        if required and key not in raw:
            rep.error(key, f"missing required section [{key}]")
    project = _validate(rep, "project", raw.get("project", {}), _SECTIONS["project"])
    warehouse = _warehouse(rep, raw.get("warehouse", {}), root)
    profiles = _profiles(rep, raw.get("profiles", {}))
    events = _events(rep, raw.get("events", {}))
    sensitive = _sensitive(rep, raw.get("sensitive", {}))
    consent = _consent(rep, raw["consent"]) if "consent" in raw else None
    destinations = _destinations(rep, raw.get("destinations", {}))
    state_raw = _validate(rep, "state", raw.get("state", {"url": "sqlite:///.audience/state.db"}), _SECTIONS["state"])
    if destinations and consent is None:
        rep.error(
            "consent",
            "destinations are declared but there is no [consent] section; "
            "nothing may be exported without the consent filter",
        )
    if rep.diags or warehouse is None or profiles is None:
        return None
    return ProjectConfig(
        root=root,
        file=file,
        name=str(project.get("name", root.name)),
        audiences_dir=root / str(project.get("audiences", "audiences")),
        warehouse=warehouse,
        profiles=profiles,
        events=events,
        sensitive=sensitive,
        consent=consent,
        destinations=destinations,
        state=StateConfig(str(state_raw.get("url", "sqlite:///.audience/state.db"))),
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


def _warehouse(rep: ConfigReporter, data: Any, root: Path) -> WarehouseConfig | None:
    data = _validate(rep, "warehouse", data, _SECTIONS["warehouse"])
    url = data.get("url")
    if not isinstance(url, str):
        return None
    dialect = data.get("dialect") or dialect_of_url(url)
    if dialect is None:
        rep.error(
            "warehouse.dialect",
            f'cannot tell the dialect from url "{url.split(":", 1)[0]}:..."; '
            f"set dialect to one of {', '.join(DIALECTS)}",
        )
        return None
    return WarehouseConfig(url=url, dialect=str(dialect))


def _check_name(rep: ConfigReporter, path: str, value: Any, what: str = "column") -> None:
    if isinstance(value, str) and not _TABLE.match(value):
        rep.error(path, f'"{value}" is not a valid {what} name')


def _profiles(rep: ConfigReporter, data: Any) -> ProfilesConfig | None:
    data = _validate(rep, "profiles", data, _SECTIONS["profiles"])
    if "table" not in data or "key" not in data:
        return None
    for key in ("table", "key", "country", "birth_date"):
        _check_name(rep, f"profiles.{key}", data.get(key), "table" if key == "table" else "column")
    identifiers = data.get("identifiers", {})
    for kind, column in identifiers.items():
        if kind not in IDENTIFIER_TYPES:
            rep.error(
                f"profiles.identifiers.{kind}",
                f'unknown identifier type "{kind}"; use {", ".join(IDENTIFIER_TYPES)}'
                + did_you_mean(kind, IDENTIFIER_TYPES),
            )
        elif not isinstance(column, str):
            rep.error(f"profiles.identifiers.{kind}", "must be a column name (string)")
    return ProfilesConfig(
        table=data["table"],
        key=data["key"],
        country=data.get("country"),
        birth_date=data.get("birth_date"),
        identifiers=dict(identifiers),
        column_types=_column_types(rep, "profiles.columns", data.get("columns", {})),
    )


def _column_types(rep: ConfigReporter, path: str, data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, typ in data.items():
        if not isinstance(typ, str):
            rep.error(f"{path}.{name}", 'must be a type name such as "varchar" or "timestamp"')
        else:
            out[name] = typ
    return out


def _events(rep: ConfigReporter, data: Any) -> dict[str, EventConfig]:
    events: dict[str, EventConfig] = {}
    if not isinstance(data, dict):
        rep.error("events", "must be a table of [events.NAME] sections")
        return events
    for name, section in data.items():
        path = f"events.{name}"
        if not _NAME.match(name):
            rep.error(path, f'event name "{name}" must match [a-z_][a-z0-9_]*')
        section = _validate(rep, path, section, _SECTIONS["event"])
        for key in ("table", "key", "timestamp"):
            _check_name(rep, f"{path}.{key}", section.get(key), "table" if key == "table" else "column")
        if all(k in section for k in ("table", "key", "timestamp")):
            events[name] = EventConfig(
                name,
                section["table"],
                section["key"],
                section["timestamp"],
                _column_types(rep, f"{path}.columns", section.get("columns", {})),
            )
    return events


def _sensitive(rep: ConfigReporter, data: Any) -> SensitiveConfig:
    data = _validate(rep, "sensitive", data, _SECTIONS["sensitive"])
    columns = {k: v for k, v in data.get("columns", {}).items() if isinstance(v, str)}
    for key in columns:
        if "." not in key:
            rep.error(f"sensitive.columns.{key}", 'a sensitive column is written "table.column"')
    values: list[SensitiveValueRule] = []
    for i, item in enumerate(data.get("values", [])):
        path = f"sensitive.values[{i}]"
        if not isinstance(item, dict) or not {"column", "values", "category"} <= set(item):
            rep.error("sensitive.values", f"entry {i + 1} needs column, values and category")
            continue
        column = str(item["column"])
        if "." not in column:
            rep.error(path, f'column "{column}" must be written "table.column"')
            continue
        table, col = column.rsplit(".", 1)
        values.append(SensitiveValueRule(table, col, tuple(str(v) for v in item["values"]), str(item["category"])))
    tables = {k: v for k, v in data.get("tables", {}).items() if isinstance(v, str)}
    categories = tuple(str(c) for c in data.get("categories", []))
    return SensitiveConfig(columns=columns, values=tuple(values), tables=tables, categories=categories)


def _consent(rep: ConfigReporter, data: Any) -> ConsentConfig | None:
    data = _validate(rep, "consent", data, _SECTIONS["consent"])
    basis = data.get("basis", {})
    for country, value in basis.items():
        if value not in BASES:
            rep.error(f"consent.basis.{country}", f'unknown basis "{value}"; use opt_in or opt_out')
        if not (country == "EEA" or re.fullmatch(r"[A-Z]{2}", country)):
            rep.error(f"consent.basis.{country}", f'"{country}" is not an ISO 3166-1 alpha-2 code or the group EEA')
    if "table" not in data:
        return None
    age = data.get("minimum_age", 16)
    if isinstance(age, int) and not 0 <= age <= 120:
        rep.error("consent.minimum_age", "must be between 0 and 120")
    return ConsentConfig(
        table=data["table"],
        suppression_table=data.get("suppression_table"),
        minimum_age=int(age),
        default_basis=data.get("default_basis", "opt_in"),
        basis=dict(basis),
        tcf_vendor_id=data.get("tcf_vendor_id"),
    )


def _destinations(rep: ConfigReporter, data: Any) -> dict[str, DestinationConfig]:
    out: dict[str, DestinationConfig] = {}
    if not isinstance(data, dict):
        rep.error("destinations", "must be a table of [destinations.NAME] sections")
        return out
    for name, section in data.items():
        path = f"destinations.{name}"
        if not _NAME.match(name):
            rep.error(path, f'destination name "{name}" must match [a-z_][a-z0-9_]*')
        section = _validate(rep, path, section, _SECTIONS["destination"])
        dest = _destination(rep, path, name, section)
        if dest is not None:
            out[name] = dest
    return out


def _refused_identifiers(rep: ConfigReporter, path: str, fmt: object, identifiers: list[Any]) -> None:
    """Identifier types the format cannot carry (the hashing profiles say which, e.g. uid2 maps
    emails and phone numbers only)."""
    from exporters.hashing.profiles import PROFILES  # only here: exporters cost start-up time

    profile = PROFILES.get(fmt) if isinstance(fmt, str) else None
    for ident in identifiers:
        if profile is not None and ident in IDENTIFIER_TYPES and not profile.accepts(ident):
            rep.error(f"{path}.identifiers", f"the {fmt} format does not accept {ident} identifiers")


def _destination(rep: ConfigReporter, path: str, name: str, s: dict[str, Any]) -> DestinationConfig | None:
    kind = s.get("type")
    if kind in ("s3", "file") and "uri" not in s:
        rep.error(f"{path}.uri", f"missing required key for a {kind} destination")
    if kind == "s3" and isinstance(s.get("uri"), str) and not s["uri"].startswith("s3://"):
        rep.error(f"{path}.uri", 'an s3 destination needs a uri such as "s3://bucket/prefix/"')
    if kind == "file" and isinstance(s.get("uri"), str) and not s["uri"].startswith("file:"):
        rep.error(f"{path}.uri", 'a file destination needs a uri such as "file:///abs/path" or "file:relative/path"')
    if kind == "grpc" and "target" not in s:
        rep.error(f"{path}.target", 'missing required key for a grpc destination (e.g. "127.0.0.1:50061")')
    for ident in s.get("identifiers", []):
        if ident not in IDENTIFIER_TYPES:
            rep.error(f"{path}.identifiers", f'unknown identifier type "{ident}"; use {", ".join(IDENTIFIER_TYPES)}')
    _refused_identifiers(rep, path, s.get("format"), s.get("identifiers", []))
    if "token_env" in s and "token" in s:
        rep.error(f"{path}.token", "secrets are never written in the file; use token_env")
    if not all(k in s for k in ("type", "format", "identifiers", "purposes")) or kind not in DESTINATION_TYPES:
        return None
    max_change = float(s.get("max_change", 0.5))
    if not 0 < max_change <= 1:
        rep.error(f"{path}.max_change", "must be a fraction above 0 and at most 1 (0.5 = 50%)")
    for key, what in (("batch_size", "identifiers per gRPC batch"), ("rows_per_file", "rows per file part")):
        if key in s and int(s[key]) < 1:
            rep.error(f"{path}.{key}", f"must be at least 1 ({what})")
    if "deadline_seconds" in s and not float(s["deadline_seconds"]) > 0:
        rep.error(f"{path}.deadline_seconds", "must be a number of seconds above 0")
    uri = s.get("uri")
    return DestinationConfig(
        name=name,
        type=kind,
        format=s["format"],
        identifiers=tuple(s["identifiers"]),
        purposes=tuple(str(p) for p in s["purposes"]),
        min_size=int(s.get("min_size", 100)),
        max_change=max_change,
        uri=uri,
        endpoint_url=s.get("endpoint_url"),
        region=s.get("region"),
        sse=s.get("sse"),
        kms_key_id=s.get("kms_key_id"),
        target=s.get("target"),
        token_env=s.get("token_env"),
        tls=bool(s.get("tls", True)),
        ca_cert=s.get("ca_cert"),
        deadline_seconds=float(s.get("deadline_seconds", 30.0)),
        batch_size=int(s.get("batch_size", 5000)),
        rows_per_file=int(s.get("rows_per_file", 1_000_000)),
    )
