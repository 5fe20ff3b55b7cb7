"""Command implementations behind `audience ...` (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from audience.config import ConfigError, ProjectConfig, load_config
from audience.errors import UserError
from audience.project import Project, load_project
from dsl.diagnostics import Diagnostic, diagnostics_json


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


def audience_problems(project: Project, name: str) -> list[Diagnostic]:
    """Errors that block one audience: inside its block or the blocks of audiences it includes.

    An error elsewhere in the same file does not block it (another planner's draft should not
    stop a working audience from refreshing).
    """
    from dsl.checker import memberships

    spans: list[tuple[str, object]] = []
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in project.audiences:
            continue
        seen.add(current)
        aud = project.audiences[current]
        spans.append((aud.file, aud.span))
        todo.extend(m.audience for m in memberships(aud.where))

    def inside(d: Diagnostic) -> bool:
        return any(
            d.file == file
            and (span.line, span.col)
            <= (d.span.line, d.span.col)  # type: ignore[attr-defined]
            <= (span.end_line, span.end_col)
            for file, span in spans
        )  # type: ignore[attr-defined]

    return [d for d in project.diagnostics if d.severity == "error" and inside(d)]


def load_for_audience(args: argparse.Namespace) -> Project | None:
    project = open_project(args, require_ok=False)
    if project is None:
        return None
    aud = project.audience(args.name)  # raises UnknownAudience (exit 1)
    problems = audience_problems(project, aud.name)
    if problems:
        print_diagnostics(problems, project.sources)
        return None
    return project


# ---- init / check ---------------------------------------------------------------------------
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


def cmd_init(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    target = Path(args.dir)
    if (target / "audience.toml").exists():
        raise UserError(f"{target / 'audience.toml'} already exists; refusing to overwrite a project")
    tmp = target.with_name(f".{target.name}.init-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_starter(tmp)
    from audience.demo_run import build_sample_warehouse

    build_sample_warehouse(tmp, fans=500, as_of=datetime.now(UTC))
    target.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        item.rename(target / item.name)
    tmp.rmdir()
    print(f"created a starter project in {target} (run: audience check --project {target})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        project = load_project(Path(args.project))
    except ConfigError as err:
        if args.format == "json":
            print(diagnostics_json(err.diagnostics))
        else:
            print_diagnostics(err.diagnostics, {}, stream=sys.stdout)
        return 1
    if args.format == "json":
        print(diagnostics_json(project.diagnostics))
    elif project.diagnostics:
        print_diagnostics(project.diagnostics, project.sources, stream=sys.stdout)
    else:
        n = len(project.audiences)
        print(f"ok: {n} audience{'s' if n != 1 else ''} in {len(project.sources)} files, no problems")
    return 0 if project.ok else 1


# ---- compile / members ------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from audience.build import audience_sql

    project = load_for_audience(args)
    if project is None:
        return 1
    dialect = args.dialect or project.config.warehouse.dialect
    print(audience_sql(project, args.name, args.as_of, dialect, args.destination, pretty=args.pretty))
    return 0


def cmd_members(args: argparse.Namespace) -> int:
    from audience.build import member_keys

    project = load_for_audience(args)
    if project is None:
        return 1
    if args.destination:
        from audience.consented import exported_members

        keys = exported_members(project, args.name, args.destination, args.as_of)
    else:
        keys = member_keys(project, args.name, args.as_of)
    out = sys.stdout
    for key in keys:
        out.write(f"{key}\n")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from audience.consented import estimate_command

    return estimate_command(args)


def cmd_refresh(args: argparse.Namespace) -> int:
    from audience.runs.cli import refresh_command

    return refresh_command(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from audience.runs.cli import plan_command

    return plan_command(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from audience.runs.cli import runs_command

    return runs_command(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from audience.service.server import serve_command

    return serve_command(args)


def cmd_dsp_sandbox(args: argparse.Namespace) -> int:
    from exporters.grpc_ingest.sandbox import run_sandbox

    if not args.db.is_absolute():
        args.db = Path(args.project) / args.db
    args.db.parent.mkdir(parents=True, exist_ok=True)
    return run_sandbox(args)


def cmd_consent_import(args: argparse.Namespace) -> int:
    from audience.consent_import import import_command

    return import_command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from audience.demo_run import run_demo

    return run_demo(Path(args.dir), fans=args.fans, as_of=args.as_of)
