"""`audience demo`: the whole path, embedded.

Builds a synthetic music-label warehouse in DuckDB, checks the starter audiences, prints each
audience's size and SQL, the consent funnel per destination, then refreshes every sync into
local file drops twice (a first full upload, then an incremental one a day later) and shows
the run history. No server is needed.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from audience.cli.runs import summary_line
from audience.cli.support import print_diagnostics, write_starter
from audience.demo import build_sample_warehouse
from audience.errors import UserError


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(target: Path, *, fans: int, as_of: datetime) -> int:
    from audience.build import audience_sql, member_keys
    from audience.consented import consented
    from audience.project import load_project
    from audience.runs.api import open_store
    from audience.runs.engine import RunEngine, find_sync
    from consent_filter.funnel import rounded_funnel

    if (target / "audience.toml").exists() and not (target / ".audience-demo").exists():
        raise UserError(f"{target} holds a project that the demo did not create; choose another --dir")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    (target / ".audience-demo").write_text("created by `audience demo`; safe to delete\n", encoding="utf-8")
    write_starter(target)
    _say(f"1. Building a synthetic music-label warehouse with {fans} fans in {target / 'warehouse.duckdb'} ...")
    counts = build_sample_warehouse(target, fans=fans, as_of=as_of)
    _say("   " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    project = load_project(target)
    try:
        if not project.ok:
            print_diagnostics(project.diagnostics, project.sources)
            return 1
        _say(f"2. Checked {len(project.audiences)} audiences in {len(project.sources)} files: no problems\n")
        _say("3. Audiences (before consent), as of " + as_of.isoformat())
        for name, aud in sorted(project.audiences.items()):
            size = len(member_keys(project, name, as_of))
            _say(f"\n== {name}: {size} members — {aud.description or ''}")
            _say(audience_sql(project, name, as_of, "duckdb", pretty=True))
        _say("\n4. Consent funnel per destination (counts below min_size are hidden)")
        for name, aud in sorted(project.audiences.items()):
            for sync in aud.syncs:
                funnel = consented(project, name, sync.destination, as_of).funnel()
                shown = rounded_funnel(funnel, project.config.destinations[sync.destination].min_size)
                _say(f"   {name} -> {sync.destination}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        _say("\n5. Refreshing every sync into file drops under exports/ (first run: full upload)")
        store = open_store(project)
        engine = RunEngine(project, store)
        try:
            for when in (as_of, as_of + timedelta(days=1)):
                for name, aud in sorted(project.audiences.items()):
                    for sync in aud.syncs:
                        for s in find_sync(project, name, sync.destination):
                            _say("   " + summary_line(engine.refresh(s, as_of=when)))
                if when == as_of:
                    _say("   ... a day later, only what changed is sent:")
        finally:
            store.close()
        _say(f"\nDone. Explore: audience runs --project {target}; audience plan --project {target}; "
             f"ls {target / 'exports'}")
        return 0
    finally:
        project.close()
