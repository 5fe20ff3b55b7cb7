"""Runs as a library: what the CLI and the gRPC planner service call."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import structlog

from audience.config import ProjectConfig
from audience.project import Project, load_project
from audience.runs.engine import LeaseLost, RunEngine, SyncBusy, find_sync
from audience.runs.model import FAILED, RunRecord, literal_error
from audience.runs.store import StateStore

log = structlog.get_logger()
_threads: list[threading.Thread] = []


def store_for(config: ProjectConfig) -> StateStore:
    """The state store named by `[state] url`."""
    return StateStore(config.state.url, config.root)


def open_store(project: Project) -> StateStore:
    return store_for(project.config)


def start_refresh(project_dir: Path, audience: str, destination: str | None, *, as_of: datetime | None,
                  force: bool = False, project: Project | None = None) -> list[str]:
    """Create the run(s) now and execute them in a background thread; return their ids at once."""
    owned = project is None
    project = project or load_project(project_dir)
    when = (as_of or datetime.now(UTC)).astimezone(UTC)
    syncs = find_sync(project, audience, destination)
    store = open_store(project)
    engine = RunEngine(project, store)
    runs = [engine.prepare(sync, as_of=when, force=force) for sync in syncs]

    def work() -> None:
        worker_store = open_store(project)
        try:
            worker = RunEngine(project, worker_store)
            for sync, run in zip(syncs, runs, strict=True):
                try:
                    worker.refresh(sync, as_of=run.as_of, force=force, run_id=run.run_id)
                except (SyncBusy, LeaseLost) as err:  # the run is another worker's to finish: leave it
                    log.info("run.not_ours", run_id=run.run_id, reason=str(err))
                except Exception as err:  # recorded on the run; a background thread must not die loudly
                    log.error("run.crashed", run_id=run.run_id, error=str(err))
                    record = worker_store.get_run(run.run_id)
                    if record and not record.finished:
                        record.state, record.error = FAILED, literal_error(str(err))
                        record.finished_at = datetime.now(UTC)
                        worker_store.save_run(record)
        finally:
            worker_store.close()
            if owned:
                project.close()

    thread = threading.Thread(target=work, name=f"refresh-{audience}", daemon=True)
    _threads.append(thread)
    thread.start()
    return [r.run_id for r in runs]


def wait_for_background(timeout: float | None = None) -> None:
    """Let runs in flight reach their end (graceful shutdown)."""
    for thread in list(_threads):
        thread.join(timeout)


def get_run(config: ProjectConfig, run_id: str) -> RunRecord | None:
    store = store_for(config)
    try:
        return store.get_run(run_id)
    finally:
        store.close()


def list_runs(config: ProjectConfig, *, audience: str | None = None, limit: int = 50,
              offset: int = 0) -> list[RunRecord]:
    store = store_for(config)
    try:
        return store.list_runs(audience=audience, limit=limit, offset=offset)
    finally:
        store.close()
