"""`audience refresh`, `audience plan`, `audience runs`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from audience.cli.support import open_config, open_project, print_diagnostics
from audience.errors import UserError
from audience.runs.api import open_store, store_for
from audience.runs.engine import LeaseLost, RunEngine, Sync, SyncBusy, SyncNotDue, find_sync
from audience.runs.model import SUCCEEDED, RunRecord
from audience.runs.schedule import due_syncs


def summary_line(run: RunRecord) -> str:
    c = run.counts
    detail = (f"adds {c.get('adds_sent', 0)}, removes {c.get('removes_sent', 0)}, "
              f"exportable {c.get('funnel_exportable', 0)} of {c.get('funnel_matched', 0)} matched")
    line = f"{run.run_id} {run.audience} -> {run.destination}: {run.state} ({detail})"
    return f"{line}: {run.error}" if run.error else line


def _progress_printer():
    """A progress bar on a terminal; nothing otherwise (the summary line is printed at the end)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import Progress

    bar = Progress(transient=True)
    tasks: dict[str, Any] = {}

    def update(run: RunRecord) -> None:
        if run.run_id not in tasks:
            tasks[run.run_id] = bar.add_task(f"{run.audience} -> {run.destination}", total=None)
        bar.update(tasks[run.run_id], completed=run.progress_done, total=run.progress_total or None,
                   description=f"{run.audience} -> {run.destination} [{run.state}]")

    return bar, update


def refresh_command(args: argparse.Namespace) -> int:
    if not args.due and not args.name:
        raise UserError("name an audience (audience refresh NAME) or use --due")
    project = open_project(args, require_ok=False)
    if project is None:
        return 1
    try:
        results, skipped, listed = _refresh(project, args)
    finally:
        project.close()
    if args.json:
        print(json.dumps({"runs": [r.to_json() for r in results], "skipped_busy": skipped}, indent=2))
    else:
        for run in results:
            print(summary_line(run))
        for line in skipped:
            print(f"skipped: {line}")
        if args.due and not listed:
            print("no sync is due")
    for run in results:
        if run.state != SUCCEEDED:  # one clear line on stderr per run that did not succeed
            print(f"error: {run.audience} -> {run.destination}: {run.error}", file=sys.stderr)
    return 0 if all(r.state == SUCCEEDED for r in results) else 2


def _refresh(project: Any, args: argparse.Namespace) -> tuple[list[RunRecord], list[str], list[Sync]]:
    """Run the requested syncs; a sync another worker is running (or just ran) is skipped."""
    store = open_store(project)
    bar, update = _progress_printer()
    engine = RunEngine(project, store, progress=update)
    results: list[RunRecord] = []
    skipped: list[str] = []
    try:
        if args.due:
            syncs = [s for d in due_syncs(project, store, args.as_of) if d.due
                     for s in find_sync(project, d.audience, d.destination)]
        else:
            syncs = find_sync(project, args.name, args.destination)
        if bar:
            bar.start()
        for sync in syncs:
            sync = _check_compiles(project, sync)
            try:
                results.append(engine.refresh(sync, as_of=args.as_of, force=args.force, only_if_due=args.due))
            except (SyncBusy, SyncNotDue, LeaseLost) as err:
                skipped.append(str(err))
    finally:
        if bar:
            bar.stop()
        store.close()
    return results, skipped, syncs


def _check_compiles(project: Any, sync: Sync) -> Sync:
    """The sync to run. A definition that now reaches sensitive data (only E3xx errors) is not
    refused: its run removes every member it exported, in every mode; any other error refuses."""
    from dataclasses import replace

    problems = project.audience_problems(sync.audience.name)
    if not problems:
        return sync
    print_diagnostics(problems, project.sources)
    if all(d.code.startswith("E3") for d in problems):
        return replace(sync, withdraw=problems[0].message.split(" and may never")[0])
    raise UserError(f"audience {sync.audience.name} does not compile; nothing was sent")


def plan_command(args: argparse.Namespace) -> int:
    project = open_project(args, require_ok=False)
    if project is None:
        return 1
    store = open_store(project)
    engine = RunEngine(project, store)
    rows = []
    try:
        for due in due_syncs(project, store, args.as_of):
            row: dict[str, Any] = {"audience": due.audience, "destination": due.destination, "schedule": due.schedule,
                                   "due": due.due, "next_run": due.next_time.isoformat() if due.next_time else None}
            if project.audience_problems(due.audience):
                row["error"] = "does not compile (see audience check)"
            else:
                sync = find_sync(project, due.audience, due.destination)[0]
                decision = engine.preview(sync, as_of=args.as_of)
                c = decision["counts"]
                row.update(mode=decision["mode"], outcome=decision["outcome"],
                           adds=c["adds_sent"], removes=c["removes_sent"], exportable=c["funnel_exportable"],
                           note=decision.get("error"))
            rows.append(row)
    finally:
        store.close()
        project.close()
    if args.json:
        print(json.dumps({"syncs": rows}, indent=2))
        return 0
    if not rows:
        print("no syncs declared (add `sync DESTINATION { ... }` to an audience)")
    for r in rows:
        head = f"{r['audience']} -> {r['destination']} [{r['schedule'] or 'manual'}] {'due' if r['due'] else 'not due'}"
        if "error" in r:
            print(f"{head}: {r['error']}")
        else:
            extra = f" — {r['note']}" if r.get("note") else ""
            print(f"{head}: {r['mode']}, +{r['adds']} / -{r['removes']}{extra}")
    return 0


def runs_command(args: argparse.Namespace) -> int:
    config = open_config(args)
    if config is None:
        return 1
    store = store_for(config)
    try:
        runs = store.list_runs(limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"runs": [r.to_json() for r in runs]}, indent=2))
        return 0
    print(f"{'run':<26} {'audience':<28} {'destination':<14} {'state':<10} {'adds':>7} {'removes':>7} "
          f"{'started':<20} {'finished':<20} error")
    fmt = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"  # noqa: E731
    for r in runs:
        print(f"{r.run_id:<26} {r.audience:<28} {r.destination:<14} {r.state:<10} "
              f"{r.counts.get('adds_sent', 0):>7} {r.counts.get('removes_sent', 0):>7} "
              f"{fmt(r.started_at):<20} {fmt(r.finished_at):<20} {r.error or ''}")
    return 0
