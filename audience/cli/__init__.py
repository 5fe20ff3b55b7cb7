"""The `audience` command.

Exit status (interfaces.md): 0 success, 1 the user's input is wrong (diagnostics printed),
2 an operational failure (warehouse, network, destination), with one clear line on stderr and
never a traceback unless `--debug`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from audience.cli import commands
from audience.errors import OperationalError, UserError
from proto_gen import ProtoGenError

DISTRIBUTION = "audience-builder"


def _as_of(text: str) -> datetime:
    from dsl.parser import parse_iso_datetime

    value = parse_iso_datetime(text)
    if value is None:
        raise argparse.ArgumentTypeError(f'"{text}" is not an ISO 8601 timestamp (e.g. 2026-11-22T06:00:00Z)')
    return value


class _Parser(argparse.ArgumentParser):
    """Wrong arguments are the user's input being wrong: exit status 1 (interfaces.md)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _version() -> str:
    """The installed distribution's version (the wheel's metadata, or the editable install's)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    # --project and --debug work before or after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a value given before it.
    common = _Parser(add_help=False)
    common.add_argument("--project", default=argparse.SUPPRESS, metavar="DIR", help="project folder (default: .)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for unexpected errors")
    timed = _Parser(add_help=False)
    timed.add_argument(
        "--as-of",
        type=_as_of,
        default=None,
        metavar="TIMESTAMP",
        help="evaluate at this UTC time (ISO 8601; default: now)",
    )

    parser = _Parser(prog="audience", description="Consent-aware audience builder")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--project", default=".", metavar="DIR", help="project folder (default: .)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str, *parents: _Parser) -> _Parser:
        p = sub.add_parser(name, parents=[common, *parents], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("init", commands.cmd_init, "write a starter project")
    p.add_argument("dir", metavar="DIR")
    p = add("check", commands.cmd_check, "parse and check every audience file and audience.toml")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = add("compile", commands.cmd_compile, "print the SQL that selects an audience's profile keys", timed)
    p.add_argument("name")
    p.add_argument(
        "--dialect", default=None, help="duckdb, postgres, bigquery, snowflake, spark, databricks, trino, redshift"
    )
    p.add_argument("--destination", default=None, help="apply the consent filter for this destination")
    p.add_argument("--pretty", action="store_true", help="pretty-print the SQL")
    p = add("members", commands.cmd_members, "print the member profile keys, sorted", timed)
    p.add_argument("name")
    p.add_argument("--destination", default=None, help="only those that would be exported there")
    p = add("estimate", commands.cmd_estimate, "print the consent funnel per destination", timed)
    p.add_argument("name")
    p.add_argument("--destination", default=None)
    p.add_argument("--json", action="store_true")
    p = add("plan", commands.cmd_plan, "what every sync would send now, and whether it is due", timed)
    p.add_argument("--json", action="store_true")
    p = add("refresh", commands.cmd_refresh, "run syncs now", timed)
    p.add_argument("name", nargs="?")
    p.add_argument("--destination", default=None)
    p.add_argument("--due", action="store_true", help="run every sync whose schedule is due")
    p.add_argument("--force", action="store_true", help="release a run held by the max_change guard")
    p.add_argument("--json", action="store_true")
    p = add("runs", commands.cmd_runs, "run history")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p = add("serve", commands.cmd_serve, "start the gRPC planner service")
    from audience.service.options import add_serve_arguments

    add_serve_arguments(p)
    p = add("dsp-sandbox", commands.cmd_dsp_sandbox, "start the sandbox gRPC receiver")
    from exporters.grpc_ingest.sandbox import add_sandbox_arguments

    add_sandbox_arguments(p)
    consent = sub.add_parser("consent", help="consent signal tools")
    csub = consent.add_subparsers(dest="consent_command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = csub.add_parser(
        "import", parents=[common], help="import consent signals (CSV of profile key, signal, captured time)"
    )
    p.set_defaults(func=commands.cmd_consent_import)
    p.add_argument("file")
    p.add_argument("--format", required=True, choices=("tcf", "usp", "gpc", "gpp"))
    p = add("demo", commands.cmd_demo, "build a demo warehouse and run the whole path end to end", timed)
    p.add_argument("--dir", default="audience-demo", help="where to write the demo project (default: ./audience-demo)")
    p.add_argument("--fans", type=int, default=20000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports the gRPC sandbox, hence the generated protobuf modules
    except ProtoGenError as err:  # a checkout without `python -m proto_gen`, a broken install
        print(f"error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    from audience.logs import setup_logging

    setup_logging()
    if getattr(args, "as_of", None) is None and hasattr(args, "as_of"):
        args.as_of = datetime.now(UTC)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (OperationalError, ProtoGenError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `audience members X | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, no traceback
        if args.debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
