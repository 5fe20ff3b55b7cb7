"""From a folder of definitions to a checked project: config, catalog, audiences, diagnostics.

Like Feast's repo → registry step: everything a later command needs (compile, plan, refresh,
serve) starts from `load_project`, which reads `audience.toml`, reads column types from the
warehouse once, parses every `.aud` file and checks them together.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from audience.config import CONFIG_FILE, OUTSIDE_PROJECT, ConfigError, ConfigReporter, ProjectConfig, load_config
from audience.errors import UserError
from audience.warehouse import Warehouse, WarehouseNotFound, connect
from consent_filter.policy import CONSENT_COLUMNS
from consent_filter.sensitive import category_problem
from dsl import ast
from dsl.catalog import Catalog, Column, EventSource, SensitiveValues, Table, kind_of
from dsl.checker import check_project, memberships
from dsl.diagnostics import NO_SPAN, Diagnostic, Span, sort_diagnostics
from dsl.parser import parse


@dataclass
class Project:
    config: ProjectConfig
    audiences: dict[str, ast.Audience]
    sources: dict[str, str]
    diagnostics: list[Diagnostic]
    catalog: Catalog | None
    _warehouse: Warehouse | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = connect(self.config.warehouse.url, self.config.root)
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def audience(self, name: str) -> ast.Audience:
        if name not in self.audiences:
            from dsl.diagnostics import did_you_mean

            raise UnknownAudience(f'unknown audience "{name}"' + did_you_mean(name, self.audiences))
        return self.audiences[name]

    def audience_problems(self, name: str) -> list[Diagnostic]:
        """Errors that block one audience: inside its block or the blocks of audiences it includes.

        An error elsewhere in the same file does not block it (another planner's draft should not
        stop a working audience from refreshing).
        """
        spans: list[tuple[str, Span]] = []
        todo, seen = [name], set()
        while todo:
            current = todo.pop()
            if current in seen or current not in self.audiences:
                continue
            seen.add(current)
            aud = self.audiences[current]
            spans.append((aud.file, aud.span))
            todo.extend(m.audience for m in memberships(aud.where))

        def inside(d: Diagnostic) -> bool:
            at = (d.span.line, d.span.col)
            return any(d.file == file and (span.line, span.col) <= at <= (span.end_line, span.end_col)
                       for file, span in spans)

        return [d for d in self.diagnostics if d.severity == "error" and inside(d)]

    def content_hash(self, name: str) -> str:
        """SHA-256 of the audience's own block text (what changed, not where it moved)."""
        return hashlib.sha256(self.audiences[name].source_text.encode()).hexdigest()

    @cached_property
    def consent_table(self) -> Table | None:
        """The consent table with its column types, read once per loaded project (every
        consent query needs the types of `updated_at` and `expires_at`)."""
        consent = self.config.consent
        if consent is None:
            return None
        cols = self.warehouse.table_columns(consent.table) or {}
        return Table(consent.table, {c: Column(c, kind_of(t), t) for c, t in cols.items()})

    @cached_property
    def git_commit(self) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(self.config.root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None


class UnknownAudience(UserError):
    """The user named an audience the project does not define (exit status 1)."""


def find_audience_files(config: ProjectConfig) -> tuple[list[Path], list[Diagnostic]]:
    """Every `.aud` file under the audiences folder, in a stable order, and the files refused.

    Symlinks are followed while they stay inside the project folder (a file reached twice is
    read once, a folder loop is cut); a symlinked `.aud` file or folder that leads out of the
    project is an E408 error: definitions are reviewed in the project's git, not elsewhere.
    """
    root = config.root.resolve()
    found: dict[Path, Path] = {}  # resolved path -> the path it was first reached by
    refused: list[Diagnostic] = []
    walked: set[Path] = set()

    def walk(folder: Path) -> None:
        real = folder.resolve()
        if real in walked:
            return
        walked.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            refused.append(Diagnostic(config.relative(folder), NO_SPAN, "E101",
                                      f"cannot read the folder {folder}: {err.strerror}"))
            return
        for entry in entries:
            path = Path(entry.path)
            is_dir = entry.is_dir()
            if not is_dir and not entry.name.endswith(".aud"):
                continue
            if entry.is_symlink() and not path.resolve().is_relative_to(root):
                refused.append(_outside(config, path, is_dir))
            elif is_dir:
                walk(path)
            elif entry.is_file():
                found.setdefault(path.resolve(), path)

    if config.audiences_dir.is_dir():
        walk(config.audiences_dir)
    return sorted(found.values()), refused


def _outside(config: ProjectConfig, link: Path, is_dir: bool) -> Diagnostic:
    what = "folder" if is_dir else "file"
    shown = link.relative_to(config.root).as_posix() if link.is_relative_to(config.root) else str(link)
    return Diagnostic(shown, NO_SPAN, OUTSIDE_PROJECT,
                      f"this {what} is a symlink to {link.resolve()}, outside the project folder; audience "
                      "definitions must live inside the project (copy it in, or link within the project)")


def load_project(project_dir: Path | str, *, warehouse: Warehouse | None = None) -> Project:
    """Load and check a project. Raises ConfigError (user error) or WarehouseError (operational)."""
    config = load_config(Path(project_dir))
    audiences: list[ast.Audience] = []
    sources: dict[str, str] = {}
    paths, diags = find_audience_files(config)
    for path in paths:
        rel = config.relative(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            diags.append(
                Diagnostic(rel, Span(1, 1, 1, 1), "E101", f"file is not valid UTF-8 ({err.reason} at byte {err.start})")
            )
            continue
        except OSError as err:
            diags.append(Diagnostic(rel, NO_SPAN, "E101", f"cannot read the file: {err.strerror}"))
            continue
        sources[rel] = text
        result = parse(text, rel)
        diags.extend(result.diagnostics)
        audiences.extend(result.audiences)
    wh = warehouse or _connect(config)
    catalog = build_catalog(config, wh)
    diags.extend(check_project(audiences, catalog, config.destinations))
    by_name: dict[str, ast.Audience] = {}
    for aud in audiences:
        by_name.setdefault(aud.name, aud)
    return Project(config, by_name, sources, sort_diagnostics(diags), catalog, wh)


def _connect(config: ProjectConfig) -> Warehouse:
    """The project's warehouse; a DuckDB file that is not there is a diagnostic of `warehouse.url`."""
    try:
        return connect(config.warehouse.url, config.root)
    except WarehouseNotFound as err:
        raise ConfigError(_config_diags(config, [("warehouse.url", err.problem)], code="E406")) from None


def build_catalog(config: ProjectConfig, wh: Warehouse) -> Catalog:
    """Read column types once, check every catalog column exists, attach sensitivity tags."""
    problems: list[tuple[str, str]] = []  # (config key path, message)
    cache: dict[str, dict[str, str] | None] = {}

    def columns_of(table: str, declared: dict[str, str], key: str) -> dict[str, str]:
        if table not in cache:
            cache[table] = wh.table_columns(table)
        found = cache[table]
        if found is None and not declared:
            problems.append((key, f'table "{table}" does not exist in the warehouse'))
            return {}
        return {**(found or {}), **declared}

    def need(table: str, cols: dict[str, str], column: str | None, key: str) -> None:
        if column is not None and cols and column not in cols:
            from dsl.diagnostics import did_you_mean

            problems.append((key, f'column "{column}" does not exist in table "{table}"' + did_you_mean(column, cols)))

    sens = config.sensitive
    p = config.profiles
    profile_cols = columns_of(p.table, p.column_types, "profiles.table")
    need(p.table, profile_cols, p.key, "profiles.key")
    need(p.table, profile_cols, p.country, "profiles.country")
    need(p.table, profile_cols, p.birth_date, "profiles.birth_date")
    for kind, column in p.identifiers.items():
        need(p.table, profile_cols, column, f"profiles.identifiers.{kind}")
    tables: dict[str, dict[str, str]] = {p.table: profile_cols}
    for name, ev in config.events.items():
        cols = columns_of(ev.table, ev.column_types, f"events.{name}.table")
        need(ev.table, cols, ev.key, f"events.{name}.key")
        need(ev.table, cols, ev.timestamp, f"events.{name}.timestamp")
        tables[ev.table] = cols
    if config.consent is not None:
        cols = columns_of(config.consent.table, {}, "consent.table")
        for column in CONSENT_COLUMNS:
            need(config.consent.table, cols, column, "consent.table")
        if config.consent.suppression_table:
            cols = columns_of(config.consent.suppression_table, {}, "consent.suppression_table")
            need(config.consent.suppression_table, cols, "profile_key", "consent.suppression_table")
    for qualified in sens.columns:
        table, column = qualified.rsplit(".", 1)
        match = _match_table(table, tables)
        if match is not None:
            need(match, tables[match], column, f"sensitive.columns.{qualified}")
    for path, category in _categories(config):
        if (problem := category_problem(category, sens.categories)) is not None:
            problems.append((path, problem))
    if problems:
        raise ConfigError(_config_diags(config, problems))
    return Catalog(
        profile=_table(p.table, profile_cols, config),
        profile_key=p.key,
        events={
            name: EventSource(name, _table(ev.table, tables[ev.table], config), ev.key, ev.timestamp)
            for name, ev in config.events.items()
        },
        country_column=p.country,
        birth_date_column=p.birth_date,
        identifiers=dict(p.identifiers),
    )


def _categories(config: ProjectConfig) -> list[tuple[str, str]]:
    s = config.sensitive
    out = [(f"sensitive.columns.{k}", v) for k, v in s.columns.items()]
    out += [(f"sensitive.tables.{k}", v) for k, v in s.tables.items()]
    out += [("sensitive.values", v.category) for v in s.values]
    return out


def _match_table(name: str, tables: dict[str, dict[str, str]]) -> str | None:
    """Sensitive rules may name a table with or without its schema."""
    for table in tables:
        if name == table or name == table.rsplit(".", 1)[-1] or table == name.rsplit(".", 1)[-1]:
            return table
    return None


def _table(name: str, cols: dict[str, str], config: ProjectConfig) -> Table:
    short = name.rsplit(".", 1)[-1]
    names = (name, short)
    s = config.sensitive
    sensitive_columns = {q.rsplit(".", 1)[1]: cat for q, cat in s.columns.items() if q.rsplit(".", 1)[0] in names}
    values: dict[str, tuple[SensitiveValues, ...]] = {}
    for rule in s.values:
        if rule.table in names:
            values[rule.column] = (*values.get(rule.column, ()), SensitiveValues(rule.values, rule.category))
    table_category = next((cat for t, cat in s.tables.items() if t in names), None)
    return Table(
        name=name,
        columns={c: Column(c, kind_of(t), t) for c, t in cols.items()},
        sensitive=table_category,
        sensitive_columns=sensitive_columns,
        sensitive_values=values,
    )


def _config_diags(config: ProjectConfig, problems: list[tuple[str, str]], code: str = "E407") -> list[Diagnostic]:
    rep = ConfigReporter(CONFIG_FILE, config.file.read_text(encoding="utf-8"))
    for path, message in problems:
        rep.error(path, message, code=code)
    return rep.diags
