"""A run and its life cycle: pending → building → exporting → succeeded | failed | held."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

PENDING, BUILDING, EXPORTING, SUCCEEDED, FAILED, HELD = (
    "pending", "building", "exporting", "succeeded", "failed", "held",
)
TERMINAL = (SUCCEEDED, FAILED, HELD)
ACTIVE = (PENDING, BUILDING, EXPORTING)


@dataclass
class RunRecord:
    run_id: str
    audience: str
    destination: str
    mode: str
    state: str
    as_of: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    progress_done: int = 0
    progress_total: int = 0
    definition_file: str = ""
    content_hash: str = ""
    git_commit: str | None = None
    full_upload: bool = False
    force: bool = False

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("as_of", "created_at", "started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        return data
