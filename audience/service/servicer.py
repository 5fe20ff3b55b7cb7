"""``audience.v1.AudienceService``: the planner RPCs over a cached project.

Each handler parses and validates its request, takes the current project snapshot (reloaded
when files changed, see :mod:`~audience.service.project_cache`) and raises
:class:`~audience.service.errors.ServiceError` or a domain exception on failure; the
:func:`_unary` / :func:`_streaming` wrappers turn those into statuses with details.

The handlers are coroutines on the ``grpc.aio`` server's event loop. What is cheap (parsing
requests, cached answers, building responses) is done right there; what blocks (warehouse
queries, compiling SQL, checking a draft, reloading the project, reading run state, starting a
refresh) goes to a small bounded thread pool (``executor``). So a cached answer never queues
behind a slow query, the few worker threads do not fight the loop for the GIL the way a large
sync-server pool does, and a WatchRun stream holds no thread while it waits for the next poll.

Expensive results (compiled SQL, funnels, overlaps) are cached per snapshot, so an edited
definition is never answered from the old one; for compiles and estimates what is cached is
the finished response message (its rounding depends only on the snapshot's configuration), so
a hit costs a lookup. Identical calls in flight share one computation. SQL is cached for the
snapshot's life (it depends only on definitions, catalog and ``as_of``); warehouse results are
fresh for ``result_ttl`` seconds (the warehouse's rows change underneath), then served for
another ``result_ttl`` while one background query refreshes them. "Now" is truncated to the
second for compiling (so repeated calls share the SQL) and, for estimates and overlaps, means
"a result computed about a minute ago at most"; every
response says which ``as_of`` it is for.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import grpc

from audience.config import DIALECTS, DestinationConfig
from audience.consented import compiled_sql
from audience.consented import destination as destination_of
from audience.errors import UserError
from audience.project import Project
from audience.runs import api as runs_api
from audience.runs.model import RunRecord
from audience.service import convert
from audience.service.counts import overlap_counts, threshold_of
from audience.service.drafts import (
    CheckedDraft,
    check_condition,
    check_definition,
    overlay,
    require_compilable,
)
from audience.service.errors import (
    ServiceError,
    deadline_exceeded,
    draft_errors,
    failed_precondition,
    invalid_argument,
    not_found,
    set_error,
    to_service_error,
    unavailable,
)
from audience.service.names import (
    AUDIENCE_ID,
    audience_name,
    parse_audience_name,
    parse_parent,
    parse_run_name,
)
from audience.service.pagination import decode_token, encode_token, page_size
from audience.service.project_cache import ProjectCache, ProjectSnapshot
from audience.service.protos import audience_pb2 as pb
from audience.service.protos import audience_service_pb2 as rpc
from audience.service.protos import audience_service_pb2_grpc as rpc_grpc
from audience.service.results import ResultCache
from consent_filter.funnel import Funnel

T = TypeVar("T")
Handler = Callable[..., Any]
Context: TypeAlias = grpc.aio.ServicerContext  # grpc ships no types: an alias of Any, named for readers

DEFAULT_RESULT_TTL_SECONDS = 30.0
DEFAULT_WATCH_INTERVAL_SECONDS = 0.25
MAX_OVERLAP_AUDIENCES = 20
FOREVER = float("inf")


def _unary(method: Handler) -> Handler:
    """Map whatever the handler raises to a status (never let grpc answer UNKNOWN)."""

    @functools.wraps(method)
    async def wrapper(self: AudienceServicer, request: Any, context: Context) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            set_error(context, to_service_error(exc))
            return None

    return wrapper


def _streaming(method: Handler) -> Handler:
    @functools.wraps(method)
    async def wrapper(self: AudienceServicer, request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            set_error(context, to_service_error(exc))

    return wrapper


def check_deadline(context: grpc.ServicerContext | Context) -> float | None:
    """Seconds left for the call (None: no deadline); DEADLINE_EXCEEDED when none are left.

    Called before expensive work, so a call whose client has given up does not start a
    warehouse query nobody will read.
    """
    remaining = context.time_remaining()
    if remaining is None or remaining >= threading.TIMEOUT_MAX:
        return None  # grpc reports "no deadline" as None (aio) or an enormous number of seconds
    if remaining <= 0:
        raise deadline_exceeded()
    return remaining


def _now_to_the_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _requested_as_of(request: Any) -> datetime | None:
    return convert.from_timestamp(request.as_of_time) if request.HasField("as_of_time") else None


class AudienceServicer(rpc_grpc.AudienceServiceServicer):
    """The RPCs (CamelCase names, as the generated base class requires)."""

    def __init__(self, projects: ProjectCache, *, executor: Executor,
                 result_ttl: float = DEFAULT_RESULT_TTL_SECONDS,
                 watch_interval: float = DEFAULT_WATCH_INTERVAL_SECONDS) -> None:
        self.projects = projects
        self.executor = executor
        self.result_ttl = result_ttl
        self.watch_interval = watch_interval
        self.stopping = asyncio.Event()  # set on the server's loop when a shutdown begins

    @property
    def project_dir(self) -> Path:
        return self.projects.project_dir

    def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
        """Run *fn* in the worker pool, off the event loop (it blocks: I/O, queries, parsing)."""
        return asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def _snapshot(self) -> ProjectSnapshot:
        """The project snapshot; a reload (files changed) is done in the worker pool."""
        snapshot = self.projects.current()
        if snapshot is None:
            snapshot = await self._blocking(self.projects.get)
        return snapshot

    # ---- audiences ---------------------------------------------------------------------------
    @_unary
    async def ListAudiences(self, request: rpc.ListAudiencesRequest,
                            context: Context) -> rpc.ListAudiencesResponse:
        size = page_size(request.page_size)
        after = decode_token(request.page_token, "audiences", "")
        if after is not None and not isinstance(after, str):
            raise invalid_argument("page_token is not a token of ListAudiences", "page_token")
        snapshot = await self._snapshot()
        names = snapshot.audience_names
        start = bisect.bisect_right(names, after) if after is not None else 0
        page = names[start:start + size]
        more = start + size < len(names)
        full = request.view == pb.AUDIENCE_VIEW_FULL
        return rpc.ListAudiencesResponse(
            audiences=[snapshot.audience(name, full=full) for name in page],
            next_page_token=encode_token("audiences", "", page[-1]) if more and page else "",
            total_size=len(names))

    @_unary
    async def GetAudience(self, request: rpc.GetAudienceRequest,
                          context: Context) -> rpc.GetAudienceResponse:
        name = parse_audience_name(request.name)
        snapshot = await self._snapshot()
        snapshot.project.audience(name)  # NOT_FOUND
        full = request.view != pb.AUDIENCE_VIEW_BASIC
        return rpc.GetAudienceResponse(audience=snapshot.audience(name, full=full))

    # ---- drafts and SQL ----------------------------------------------------------------------
    @_unary
    async def ValidateAudience(self, request: rpc.ValidateAudienceRequest,
                               context: Context) -> rpc.ValidateAudienceResponse:
        which = request.WhichOneof("draft")
        if request.audience_id and not AUDIENCE_ID.fullmatch(request.audience_id):
            raise invalid_argument("audience_id must be lowercase letters, digits and _",
                                   "audience_id")
        project = (await self._snapshot()).project
        if which == "definition":
            draft = await self._blocking(check_definition, project, request.definition,
                                         request.filename)
        elif which == "condition":
            draft = await self._blocking(check_condition, project, request.condition,
                                         request.audience_id, request.filename)
        else:
            raise invalid_argument("set definition (audience blocks) or condition", "definition")
        if draft.errors:
            raise draft_errors(draft.diagnostics, draft.field, draft.filename)
        return rpc.ValidateAudienceResponse(
            diagnostics=[convert.diagnostic(d) for d in draft.diagnostics],
            audiences=[audience_name(a.name) for a in draft.audiences])

    @_unary
    async def CompileAudience(self, request: rpc.CompileAudienceRequest,
                              context: Context) -> rpc.CompileAudienceResponse:
        name = parse_audience_name(request.name)
        snapshot = await self._snapshot()
        config = snapshot.project.config
        dialect = request.dialect or config.warehouse.dialect
        if dialect not in DIALECTS:
            raise invalid_argument(f'unknown dialect "{dialect}"; use one of {", ".join(DIALECTS)}',
                                   "dialect")
        destination = request.destination or None
        if destination is not None:
            _check_destination(snapshot.project, destination, "destination")
        requested = _requested_as_of(request)
        as_of = requested or _now_to_the_second()

        def key(when: datetime) -> Hashable:
            return ("compile", name, request.definition, dialect, destination, when, request.pretty)

        def compute_at(when: datetime) -> Callable[[], rpc.CompileAudienceResponse]:
            def compute() -> rpc.CompileAudienceResponse:
                target = self._compilable(snapshot.project, name, request.definition)
                sql = compiled_sql(target, name, when, dialect, destination, pretty=request.pretty)
                return rpc.CompileAudienceResponse(sql=sql, dialect=dialect,
                                                   as_of_time=convert.timestamp(when))
            return compute

        response = await self._cached(snapshot.sql, context, key(as_of), compute_at(as_of), ttl=FOREVER)
        if requested is None and not request.definition:
            # "Now" moves on every second: compile the next second's SQL before it is asked for,
            # so callers at a second boundary do not all wait for a fresh compile.
            upcoming = as_of + timedelta(seconds=1)
            snapshot.sql.prefetch(key(upcoming), compute_at(upcoming), ttl=FOREVER,
                                  executor=self.executor)
        return response

    @staticmethod
    def _compilable(project: Project, name: str, definition: str = "") -> Project:
        """The project (with the draft overlaid, if any), once *name* is known to compile."""
        draft: CheckedDraft | None = None
        if definition:
            draft = check_definition(project, definition)
            if draft.errors and not any(a.name == name for a in draft.audiences):
                raise draft_errors(draft.diagnostics, draft.field, draft.filename)
            project = overlay(project, draft)
        project.audience(name)  # NOT_FOUND
        require_compilable(project, name, draft)
        return project

    # ---- counts ------------------------------------------------------------------------------
    @_unary
    async def EstimateAudience(self, request: rpc.EstimateAudienceRequest,
                               context: Context) -> rpc.EstimateAudienceResponse:
        name = parse_audience_name(request.name)
        snapshot = await self._snapshot()
        project = self._compilable(snapshot.project, name)
        destinations = self._estimate_destinations(project, name, request.destinations)
        as_of = _requested_as_of(request)
        key = ("estimate", name, tuple(destinations), as_of)

        def compute() -> rpc.EstimateAudienceResponse:
            from audience.consented import funnels

            when = as_of or datetime.now(UTC)
            return self._estimate_response(project, name, when, destinations,
                                           funnels(project, name, destinations, when))

        return await self._cached(snapshot.results, context, key, compute, ttl=self.result_ttl,
                                  stale_for=self.result_ttl)

    @staticmethod
    def _estimate_response(project: Project, name: str, when: datetime, destinations: list[str],
                           funnels: dict[str, Funnel]) -> rpc.EstimateAudienceResponse:
        dests = project.config.destinations
        return rpc.EstimateAudienceResponse(
            audience=audience_name(name), as_of_time=convert.timestamp(when),
            funnels=[convert.funnel(d, funnels[d], threshold_of(dests[d].min_size))
                     for d in destinations])

    @staticmethod
    def _estimate_destinations(project: Project, name: str, requested: Sequence[str]) -> list[str]:
        """The requested destinations, else the audience's syncs, else every declared one."""
        config = project.config
        if config.consent is None:
            raise failed_precondition("audience.toml has no [consent] section; nothing can be "
                                      "estimated or exported without it")
        for i, dest in enumerate(requested):
            _check_destination(project, dest, f"destinations[{i}]")
        chosen = list(requested) or [s.destination for s in project.audiences[name].syncs
                                     if s.destination in config.destinations]
        chosen = chosen or list(config.destinations)
        if not chosen:
            raise failed_precondition("the project declares no destinations; add one under "
                                      "[destinations] in audience.toml")
        return list(dict.fromkeys(chosen))

    @_unary
    async def OverlapAudiences(self, request: rpc.OverlapAudiencesRequest,
                               context: Context) -> rpc.OverlapAudiencesResponse:
        names = [parse_audience_name(n, f"names[{i}]") for i, n in enumerate(request.names)]
        if not 2 <= len(names) <= MAX_OVERLAP_AUDIENCES:
            raise invalid_argument(f"names must hold 2 to {MAX_OVERLAP_AUDIENCES} audiences",
                                   "names")
        if len(set(names)) != len(names):
            raise invalid_argument("names must not repeat an audience", "names")
        snapshot = await self._snapshot()
        project = snapshot.project
        for name in names:
            self._compilable(project, name)
        threshold = threshold_of(None)
        if request.destination:
            dest = _check_destination(project, request.destination, "destination")
            threshold = threshold_of(dest.min_size)
        as_of = _requested_as_of(request)
        key = ("overlap", tuple(names), as_of)

        def compute() -> tuple[datetime, list[int], dict[tuple[int, int], int]]:
            when = as_of or datetime.now(UTC)
            return (when, *overlap_counts(project, names, when))

        when, sizes, pairs = await self._cached(snapshot.results, context, key, compute,
                                                ttl=self.result_ttl, stale_for=self.result_ttl)
        return rpc.OverlapAudiencesResponse(
            threshold=threshold, as_of_time=convert.timestamp(when),
            sizes=[rpc.AudienceSize(audience=audience_name(n),
                                    members=convert.rounded_count(sizes[i], threshold))
                   for i, n in enumerate(names)],
            pairs=[rpc.AudiencePair(first=audience_name(names[i]), second=audience_name(names[j]),
                                    both=convert.rounded_count(count, threshold))
                   for (i, j), count in sorted(pairs.items())])

    async def _cached(self, cache: ResultCache, context: Context, key: Hashable,
                      compute: Callable[[], T], *, ttl: float, stale_for: float = 0.0) -> T:
        """A cached answer straight from the loop; a computation in the worker pool."""
        remaining = check_deadline(context)
        return await cache.aget_or_compute(key, compute, ttl=ttl, stale_for=stale_for,
                                           executor=self.executor, wait_timeout=remaining)

    # ---- runs --------------------------------------------------------------------------------
    @_unary
    async def RefreshAudience(self, request: rpc.RefreshAudienceRequest,
                              context: Context) -> rpc.RefreshAudienceResponse:
        name = parse_audience_name(request.name)
        snapshot = await self._snapshot()
        project = self._compilable(snapshot.project, name)
        destination = request.destination or None
        if destination is not None:
            _check_destination(project, destination, "destination")
        check_deadline(context)
        records = await self._blocking(self._start_refresh, project, name, destination,
                                       _requested_as_of(request), request.force)
        return rpc.RefreshAudienceResponse(runs=[self._run(project, r) for r in records])

    def _start_refresh(self, project: Project, name: str, destination: str | None,
                       as_of: datetime | None, force: bool) -> list[RunRecord]:
        """Create the runs and start them in the background (blocking: writes run state)."""
        run_ids = runs_api.start_refresh(self.project_dir, name, destination, as_of=as_of,
                                         force=force, project=project)
        return [self._record(project, name, run_id) for run_id in run_ids]

    @_unary
    async def GetRun(self, request: rpc.GetRunRequest, context: Context) -> rpc.GetRunResponse:
        audience, run_id = parse_run_name(request.name)
        project = (await self._snapshot()).project
        record = await self._blocking(self._record, project, audience, run_id)
        return rpc.GetRunResponse(run=self._run(project, record))

    @_unary
    async def ListRuns(self, request: rpc.ListRunsRequest,
                       context: Context) -> rpc.ListRunsResponse:
        audience = parse_parent(request.parent)
        size = page_size(request.page_size)
        offset = decode_token(request.page_token, "runs", request.parent) or 0
        if not isinstance(offset, int) or offset < 0:
            raise invalid_argument("page_token is not a token of ListRuns", "page_token")
        project = (await self._snapshot()).project
        records = await self._blocking(runs_api.list_runs, project.config, audience=audience, limit=size + 1,
                                       offset=offset)
        more = len(records) > size
        return rpc.ListRunsResponse(
            runs=[self._run(project, r) for r in records[:size]],
            next_page_token=encode_token("runs", request.parent, offset + size) if more else "")

    @_streaming
    async def WatchRun(self, request: rpc.WatchRunRequest,
                       context: Context) -> AsyncIterator[rpc.WatchRunResponse]:
        """Polls the run's state (in the worker pool); between polls it holds no thread."""
        audience, run_id = parse_run_name(request.name)
        project = (await self._snapshot()).project
        last: pb.Run | None = None
        while True:
            current = self._run(project, await self._blocking(self._record, project, audience, run_id))
            if current != last:
                yield rpc.WatchRunResponse(run=current)
                last = current
            if current.state in convert.TERMINAL_STATES:
                return
            if await self._stops_within(self.watch_interval):
                raise unavailable("the server is shutting down; watch the run again elsewhere")
            if context.cancelled():
                return

    async def _stops_within(self, seconds: float) -> bool:
        """Wait *seconds* on the loop; True at once when a shutdown begins meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _record(self, project: Project, audience: str, run_id: str) -> RunRecord:
        record = runs_api.get_run(project.config, run_id)
        if record is None or record.audience != audience:
            raise not_found(f'no run "{run_id}" of audience "{audience}"')
        return record

    @staticmethod
    def _run(project: Project, record: RunRecord) -> pb.Run:
        dest = project.config.destinations.get(record.destination)
        return convert.run(record, threshold_of(dest.min_size if dest else None))


def _check_destination(project: Project, name: str, field: str) -> DestinationConfig:
    """The declared destination *name*; INVALID_ARGUMENT on *field* when there is none."""
    try:
        return destination_of(project, name)
    except UserError as err:
        raise invalid_argument(str(err), field) from None


__all__ = ["AudienceServicer", "ServiceError", "check_deadline"]
