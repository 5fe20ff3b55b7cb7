"""What every command of the `audience` CLI shares: opening the project, printing diagnostics.

The one module of command-line helpers: the domain (project, build, consent, runs) and the
gRPC service never import it (pyproject.toml's import-linter contracts say so).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from audience.config import ConfigError, ProjectConfig, load_config
from audience.project import Project, load_project
from dsl.diagnostics import Diagnostic


def print_diagnostics(diags: list[Diagnostic], sources: dict[str, str], stream=sys.stderr) -> None:
    for d in diags:
        print(d.render(sources.get(d.file)), file=stream)
    errors = sum(1 for d in diags if d.severity == "error")
    files = len({d.file for d in diags})
    print(f"{errors} error{'s' if errors != 1 else ''} in {files} file{'s' if files != 1 else ''}", file=stream)


def open_config(args: argparse.Namespace) -> ProjectConfig | None:
    """Only audience.toml (commands that need no warehouse); None after printing diagnostics."""
    try:
        return load_config(Path(args.project))
    except ConfigError as err:
        print_diagnostics(err.diagnostics, {})
        return None


def open_project(args: argparse.Namespace, *, require_ok: bool = True) -> Project | None:
    """Load the project; print config diagnostics and return None on a user error."""
    try:
        project = load_project(Path(args.project))
    except ConfigError as err:
        print_diagnostics(err.diagnostics, {})
        return None
    if require_ok and not project.ok:
        print_diagnostics(project.diagnostics, project.sources)
        return None
    return project


def load_for_audience(args: argparse.Namespace) -> Project | None:
    project = open_project(args, require_ok=False)
    if project is None:
        return None
    aud = project.audience(args.name)  # raises UnknownAudience (exit 1)
    problems = project.audience_problems(aud.name)
    if problems:
        print_diagnostics(problems, project.sources)
        return None
    return project


def write_starter(target: Path) -> None:
    """Copy the starter project (audience.toml + audiences/) into `target`."""
    starter = resources.files("audience.starter")
    (target / "audiences").mkdir(parents=True, exist_ok=True)
    (target / "audience.toml").write_text(
        starter.joinpath("audience.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for entry in starter.joinpath("audiences").iterdir():
        if entry.name.endswith(".aud"):
            (target / "audiences" / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    (target / ".gitignore").write_text(".audience/\nexports/\n*.duckdb.wal\n", encoding="utf-8")


