"""A run and its life cycle: pending → building → exporting → succeeded | failed | held."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

PENDING, BUILDING, EXPORTING, SUCCEEDED, FAILED, HELD = (
    "pending", "building", "exporting", "succeeded", "failed", "held",
)
TERMINAL = (SUCCEEDED, FAILED, HELD)
UNREADABLE_ERROR = "the run failed; its error message cannot be shown (see the worker's log)"


def literal_error(text: str) -> str:
    """A free-text error (an exception's) as a run error: it quotes no counts by name."""
    return text.replace("{", "{{").replace("}", "}}")
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

    def error_text(self, render: Callable[[int], str] = str) -> str | None:
        """The error with each count it quotes (``{name}``, a key of ``counts``) rendered by
        *render*: exact for the operator's CLI, rounded by the planner service (consent.md)."""
        if self.error is None:
            return None
        try:
            return self.error.format_map({k: render(int(v)) for k, v in self.counts.items()})
        except (KeyError, ValueError, IndexError, AttributeError):
            return UNREADABLE_ERROR  # stored before errors were structured: no text to trust

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = self.error_text()
        for key in ("as_of", "created_at", "started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        return data
