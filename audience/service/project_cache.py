"""The loaded project, shared by every call and reloaded when its files change on disk.

Loading a project parses every ``.aud`` file, reads column types from the warehouse and checks
everything: far too slow to redo per call, and a planner who saves a file expects the next
call to see it without restarting the server. So each call asks :meth:`ProjectCache.get` for
the current :class:`ProjectSnapshot`; a fingerprint of ``audience.toml`` and every ``.aud``
file (path, size, mtime, inode) decides whether to reload. Calls in flight keep the snapshot
they started with; a snapshot is never mutated.

The warehouse connection is kept across reloads while its URL stays the same (DuckDB hands
out one cursor per thread, so concurrent calls share it safely). Connections of a changed URL
are closed only at shutdown, because calls or runs in flight may still use them.

A broken ``audience.toml`` is remembered with its fingerprint (calls fail with its
diagnostics until the file changes); a warehouse failure is not (the next call retries).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import structlog

from audience.config import ConfigError, load_config
from audience.project import Project, load_project
from audience.service import convert
from audience.service.protos import audience_pb2 as pb
from audience.service.results import ResultCache
from audience.warehouse import Warehouse

log = structlog.get_logger()

CONFIG_FILE = "audience.toml"
SQL_CACHE_ENTRIES = 2048
Fingerprint = tuple[tuple[str, int, int, int], ...]
Loader = Callable[..., Project]


@dataclass(frozen=True)
class ProjectSnapshot:
    """One loaded state of the project, with the results computed from it.

    Compiled SQL and warehouse results are kept apart: compiling "now" adds an entry every
    second, and must not push the expensive estimates out of a shared LRU.
    """

    project: Project
    generation: int
    results: ResultCache = field(default_factory=ResultCache, compare=False)
    sql: ResultCache = field(default_factory=lambda: ResultCache(SQL_CACHE_ENTRIES),
                             compare=False)
    _audiences: dict[tuple[str, bool], pb.Audience] = field(default_factory=dict, compare=False,
                                                             repr=False)

    @cached_property
    def audience_names(self) -> list[str]:
        """The project's audience names, sorted (the order ListAudiences pages through)."""
        return sorted(self.project.audiences)

    def audience(self, name: str, *, full: bool) -> pb.Audience:
        """The audience *name* as a message, built once per snapshot (nothing in it, its
        problems, content hash or git commit, changes until the next reload).

        The message is shared: callers copy it into their response and never modify it.
        """
        message = self._audiences.get((name, full))
        if message is None:
            project = self.project
            message = convert.audience(project.audiences[name], full=full,
                                       git_commit=project.git_commit,
                                       content_hash=project.content_hash(name),
                                       problems=project.audience_problems(name))
            self._audiences[(name, full)] = message
        return message


def _stat_entry(path: str, name: str) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (name, -1, -1, -1)
    return (name, st.st_size, st.st_mtime_ns, st.st_ino)


def _audience_files(folder: str) -> list[tuple[str, int, int, int]]:
    """Stat entries of the ``.aud`` files under *folder* (like ``os.walk``: symlinked folders
    are not entered)."""
    entries = []
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                if item.is_dir():
                    if not item.is_symlink():
                        entries.extend(_audience_files(item.path))
                elif item.name.endswith(".aud"):
                    entries.append(_stat_entry(item.path, item.path))
    except OSError:
        pass
    return entries


def fingerprint(project_dir: Path, audiences_dir: Path | None) -> Fingerprint:
    """What the project's definitions look like on disk, cheaply (stat calls, no reads).

    Asked on every call, so plain strings and ``os.scandir`` rather than ``Path`` objects.
    """
    entries = [_stat_entry(os.path.join(project_dir, CONFIG_FILE), CONFIG_FILE)]
    if audiences_dir is not None:
        entries.extend(_audience_files(os.fspath(audiences_dir)))
    return tuple(sorted(entries))


@dataclass(frozen=True)
class _State:
    """What the last load produced, swapped in as one object so readers need no lock."""

    fingerprint: Fingerprint
    snapshot: ProjectSnapshot | None
    error: ConfigError | None


class ProjectCache:
    """Thread-safe access to the current snapshot of one project folder."""

    def __init__(self, project_dir: Path, *, loader: Loader = load_project,
                 results: Callable[[], ResultCache] = ResultCache) -> None:
        self.project_dir = Path(project_dir)
        self._loader = loader
        self._results = results
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._audiences_dir: Path = self.project_dir / "audiences"
        self._warehouses: list[Warehouse] = []
        self._generation = 0
        self._last_good: ProjectSnapshot | None = None

    def current(self) -> ProjectSnapshot | None:
        """The current snapshot when no file changed since the last load, else None (no reload).

        Only stat calls: cheap enough for the asyncio server to ask on its event loop, and
        hand the slow reload (:meth:`get`) to a worker thread only when it is due.
        """
        state = self._state
        if state is None or fingerprint(self.project_dir, self._audiences_dir) != state.fingerprint:
            return None
        if state.error is not None:
            raise state.error
        assert state.snapshot is not None
        return state.snapshot

    def get(self) -> ProjectSnapshot:
        """The current snapshot, reloading first when a file changed since the last load."""
        snapshot = self.current()
        if snapshot is not None:
            return snapshot
        with self._lock:
            state = self._state
            seen = fingerprint(self.project_dir, self._audiences_dir)
            if state is None or seen != state.fingerprint:
                state = self._reload(seen)
                self._state = state
        if state.error is not None:
            raise state.error
        assert state.snapshot is not None
        return state.snapshot

    def _reload(self, seen: Fingerprint) -> _State:
        """Load the project (under the lock); *seen* was taken before reading any file."""
        try:
            config = load_config(self.project_dir)
            warehouse = self._warehouse_for(config.warehouse.url)
            project = self._loader(self.project_dir, warehouse=warehouse)  # WarehouseError: retried
        except ConfigError as err:
            log.warning("audience_service.project_config_error", problems=len(err.diagnostics))
            return _State(seen, None, err)
        if warehouse is None:
            self._warehouses.append(project.warehouse)
        self._generation += 1
        watched, self._audiences_dir = self._audiences_dir, config.audiences_dir
        # The audiences folder may have moved with the config: fingerprint what is now watched.
        if config.audiences_dir != watched:
            seen = fingerprint(self.project_dir, config.audiences_dir)
        _ = project.git_commit  # runs `git` once, here in a worker, not in a call on the event loop
        errors = sum(d.severity == "error" for d in project.diagnostics)
        log.info("audience_service.project_loaded", generation=self._generation,
                 audiences=len(project.audiences), errors=errors)
        self._last_good = ProjectSnapshot(project, self._generation, self._results())
        return _State(seen, self._last_good, None)

    def _warehouse_for(self, url: str) -> Warehouse | None:
        """The open connection of the last loaded snapshot when the URL is unchanged."""
        snapshot = self._last_good
        if snapshot is not None and snapshot.project.config.warehouse.url == url:
            return snapshot.project.warehouse
        return None

    def close(self) -> None:
        """Close every warehouse connection opened (call after calls and runs have ended)."""
        with self._lock:
            for warehouse in self._warehouses:
                warehouse.close()
            self._warehouses.clear()
            self._state = self._last_good = None
