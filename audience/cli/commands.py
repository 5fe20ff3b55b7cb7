"""Command implementations behind `audience ...` (argument parsing lives in audience/cli/__init__.py)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from audience.cli.support import load_for_audience, print_diagnostics, write_starter
from audience.config import ConfigError
from audience.errors import UserError
from audience.project import load_project
from dsl.diagnostics import diagnostics_json


def cmd_init(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    target = Path(args.dir)
    if (target / "audience.toml").exists():
        raise UserError(f"{target / 'audience.toml'} already exists; refusing to overwrite a project")
    tmp = target.with_name(f".{target.name}.init-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_starter(tmp)
    from audience.demo import build_sample_warehouse

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
    from audience.consented import compiled_sql

    project = load_for_audience(args)
    if project is None:
        return 1
    dialect = args.dialect or project.config.warehouse.dialect
    print(compiled_sql(project, args.name, args.as_of, dialect, args.destination, pretty=args.pretty))
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
    from audience.cli.estimate import estimate_command

    return estimate_command(args)


def cmd_refresh(args: argparse.Namespace) -> int:
    from audience.cli.runs import refresh_command

    return refresh_command(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from audience.cli.runs import plan_command

    return plan_command(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from audience.cli.runs import runs_command

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
    from audience.cli.consent import import_command

    return import_command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from audience.cli.demo import run_demo

    return run_demo(Path(args.dir), fans=args.fans, as_of=args.as_of)
