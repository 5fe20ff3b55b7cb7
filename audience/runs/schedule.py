"""Which syncs are due: a 5-field cron (UTC) that has fired since the last successful run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from audience.project import Project
from audience.runs.model import ACTIVE, SUCCEEDED
from audience.runs.store import StateStore


@dataclass(frozen=True)
class Due:
    audience: str
    destination: str
    schedule: str | None
    due: bool
    last_success: datetime | None
    next_time: datetime | None


def sync_due(store: StateStore, audience: str, destination: str, schedule: str | None, at: datetime) -> Due:
    """Whether one sync is due at `at`.

    A sync whose newest run is unfinished (its worker died) is due at once, so `--due` resumes
    it instead of waiting for the next tick. Otherwise: one that never ran successfully is due
    at once; one without a schedule never is (it runs only when asked by name); one with a
    schedule is due when the cron fired after the `as_of` of its last success.
    """
    runs = store.runs_of_sync(audience, destination)
    last = next((r for r in runs if r.state == SUCCEEDED), None)
    last_time = last.as_of if last else None
    if runs and runs[0].state in ACTIVE:
        return Due(audience, destination, schedule, True, last_time, at)
    if schedule is None:
        return Due(audience, destination, None, False, last_time, None)
    if last_time is None:
        return Due(audience, destination, schedule, True, None, at)
    next_time = croniter(schedule, last_time.astimezone(UTC)).get_next(datetime)
    return Due(audience, destination, schedule, next_time <= at, last_time, next_time)


def due_syncs(project: Project, store: StateStore, at: datetime) -> list[Due]:
    """Every sync of the project, by audience name, with whether it is due at `at`."""
    return [sync_due(store, aud.name, sync.destination, sync.schedule, at)
            for aud in sorted(project.audiences.values(), key=lambda a: a.name) for sync in aud.syncs]
