"""Which syncs are due: a 5-field cron (UTC) that has fired since the last successful run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from audience.project import Project
from audience.runs.model import SUCCEEDED
from audience.runs.store import StateStore


@dataclass(frozen=True)
class Due:
    audience: str
    destination: str
    schedule: str | None
    due: bool
    last_success: datetime | None
    next_time: datetime | None


def due_syncs(project: Project, store: StateStore, at: datetime) -> list[Due]:
    """Every sync of the project with whether its schedule came due since its last success.

    A sync that never ran successfully is due at once; one without a schedule never is
    (it runs only when asked by name).
    """
    out: list[Due] = []
    for aud in sorted(project.audiences.values(), key=lambda a: a.name):
        for sync in aud.syncs:
            last = next((r for r in store.runs_of_sync(aud.name, sync.destination) if r.state == SUCCEEDED), None)
            last_time = last.as_of if last else None
            if sync.schedule is None:
                out.append(Due(aud.name, sync.destination, None, False, last_time, None))
                continue
            if last_time is None:
                out.append(Due(aud.name, sync.destination, sync.schedule, True, None, at))
                continue
            next_time = croniter(sync.schedule, last_time.astimezone(UTC)).get_next(datetime)
            out.append(Due(aud.name, sync.destination, sync.schedule, next_time <= at, last_time, next_time))
    return out
