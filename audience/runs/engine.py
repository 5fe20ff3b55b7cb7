"""One refresh of one sync: build → plan → export → record, resumable at every step.

Life cycle: pending → building → exporting → succeeded | failed | held. The plan (which
members to add and which hashes to remove) is frozen in the warehouse before anything is sent,
so a run that dies and is started again sends exactly the same batches and files; the sinks
skip what the checkpoints say was acknowledged, and the receiver ignores repeated sequence
numbers. The snapshot of what the destination holds is updated only after the export.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlglot import exp

from audience.config import DestinationConfig
from audience.consent_state import usable_current
from audience.consented import policy_of, target_of
from audience.errors import OperationalError, UserError
from audience.project import Project
from audience.runs import snapshots as snap
from audience.runs.model import (
    ACTIVE,
    BUILDING,
    EXPORTING,
    FAILED,
    HELD,
    PENDING,
    SUCCEEDED,
    RunRecord,
    literal_error,
)
from audience.runs.schedule import sync_due
from audience.runs.sinks import ExportPlan, sink_for
from audience.runs.store import StateStore, now, worker_id
from audience.runs.testhook import pause_point
from audience.warehouse import Warehouse, quoted
from consent_filter.policy import NO_IDENTIFIER, PASSES, RULE_NAMES
from consent_filter.query import COUNTRY, HELD_OUT, STAGE, consent_query, identifier_alias
from dsl import ast
from dsl.compiler import PROFILE_ALIAS, CompileContext, col, predicate, table_ref
from engines import TRAITS
from exporters.vocabulary import IDENTIFIER_TYPES

if TYPE_CHECKING:
    from exporters.line_blocks import LineBlock

log = structlog.get_logger()
# Renewed at every step and batch. A dead worker on this host is taken over at once (its pid is
# gone); one on another host after the TTL, which must outlast the longest single warehouse
# statement of a build, or a live worker could lose its lease mid-statement.
LEASE_TTL = timedelta(minutes=10)
HASH_BATCH = 50_000
#: Warehouses where a run hashes in SQL what `sql_hashed_expression` can express. Only DuckDB:
#: it hashes on every core, 2-3x faster than Python; PostgreSQL's exact expressions (several
#: TRANSLATE/TRIM calls per value, ~16 us for a MAID) made a 200k-member first run take 28-30 s
#: against 15-17 s in Python, so PostgreSQL keeps the Python path.
HASHES_IN_WAREHOUSE = frozenset(name for name, t in TRAITS.items() if t.hashes_plan_in_engine)


class SyncBusy(OperationalError):
    """Another worker holds this sync's lease."""


class SyncNotDue(OperationalError):
    """`--due` found the sync no longer due once it held the lease (another worker ran it)."""


class LeaseLost(OperationalError):
    """Another worker took this sync's lease over; this worker must stop touching the run."""


@dataclass
class Sync:
    audience: ast.Audience
    destination: DestinationConfig
    mode: str
    # Set when the definition now reaches sensitive data (E3xx): the run then removes every
    # member it exported, in every mode (dsl.md: such removals are always sent).
    withdraw: str | None = None


def find_sync(project: Project, audience: str, destination: str | None) -> list[Sync]:
    aud = project.audience(audience)
    syncs = {s.destination: s for s in aud.syncs}
    if destination is None:
        if not syncs:
            raise UserError(f'audience "{audience}" has no sync blocks; name one with --destination')
        return [Sync(aud, project.config.destinations[d], s.mode) for d, s in syncs.items()]
    dest = project.config.destinations.get(destination)
    if dest is None:
        from dsl.diagnostics import did_you_mean

        raise UserError(f'unknown destination "{destination}"' + did_you_mean(destination, project.config.destinations))
    mode = syncs[destination].mode if destination in syncs else "mirror"
    return [Sync(aud, dest, mode)]


def new_run_id(at: datetime) -> str:
    return f"{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


class RunEngine:
    """Runs syncs of one project against its warehouse and state store."""

    def __init__(self, project: Project, store: StateStore, *,
                 progress: Callable[[RunRecord], None] | None = None) -> None:
        self.project = project
        self.store = store
        self.wh = project.warehouse
        self.owner = worker_id()
        self.on_progress = progress or (lambda run: None)
        self._lease: str | None = None
        self._stage = snap.stage_table(self.wh.dialect)

    # ---- entry point ----------------------------------------------------------------------------
    def refresh(self, sync: Sync, *, as_of: datetime, force: bool = False, run_id: str | None = None,
                only_if_due: bool = False) -> RunRecord:
        """Run (or resume) one sync under its lease.

        With `only_if_due`, the schedule is checked again once the lease is held: a second
        `refresh --due` that listed the sync as due while another worker was running it must
        not run it a second time (SyncNotDue).
        """
        lease = f"sync:{sync.audience.name}:{sync.destination.name}"
        if not self.store.acquire_lease(lease, self.owner, LEASE_TTL):
            raise SyncBusy(f"sync {sync.audience.name} -> {sync.destination.name} is running in another worker")
        self._lease = lease
        try:
            if only_if_due and not self._still_due(sync, as_of):
                raise SyncNotDue(f"sync {sync.audience.name} -> {sync.destination.name} is no longer due "
                                 "(another worker ran it)")
            run = self._resume_or_create(sync, as_of, force, run_id)
            return self._execute(sync, run)
        finally:
            self._lease = None
            self.store.release_lease(lease, self.owner)

    def _still_due(self, sync: Sync, at: datetime) -> bool:
        declared = {s.destination: s.schedule for s in sync.audience.syncs}
        schedule = declared.get(sync.destination.name)
        return sync_due(self.store, sync.audience.name, sync.destination.name, schedule, at).due

    def prepare(self, sync: Sync, *, as_of: datetime, force: bool = False) -> RunRecord:
        """Create (or find the unfinished) run without executing it; used to answer at once."""
        return self._resume_or_create(sync, as_of, force, None)

    def _resume_or_create(self, sync: Sync, as_of: datetime, force: bool, run_id: str | None) -> RunRecord:
        newest = next(iter(self.store.runs_of_sync(sync.audience.name, sync.destination.name)), None)
        if newest is not None and newest.state in ACTIVE:
            log.info("run.resume", run_id=newest.run_id, state=newest.state)
            newest.force = newest.force or force
            return newest
        created = now()
        aud = sync.audience
        run = RunRecord(
            run_id=run_id or new_run_id(created), audience=aud.name, destination=sync.destination.name,
            mode=sync.mode, state=PENDING, as_of=as_of.astimezone(UTC), created_at=created,
            definition_file=aud.file, content_hash=self.project.content_hash(aud.name),
            git_commit=self.project.git_commit, force=force)
        self.store.create_run(run)
        return run

    def _renew(self) -> None:
        """Extend the lease; a worker that lost it (it stalled past the TTL) must stop at once."""
        if self._lease and not self.store.renew_lease(self._lease, self.owner, LEASE_TTL):
            raise LeaseLost(f"lost the lease of {self._lease} to another worker; stopping this worker's run")

    def _save(self, run: RunRecord) -> None:
        self._renew()
        self.store.save_run(run)
        self.on_progress(run)

    def _execute(self, sync: Sync, run: RunRecord) -> RunRecord:
        run.started_at = run.started_at or now()
        try:
            snap.ensure_schema(self.wh)
            done = self.store.checkpoints(run.run_id)
            if "plan" not in done:
                run.state = BUILDING
                self._save(run)
                decision = self._build_plan(sync, run)
                self._renew()  # still ours: only the lease holder may freeze the plan
                self.store.checkpoint(run.run_id, "plan", decision)
                pause_point("plan")
                done = self.store.checkpoints(run.run_id)  # go on with the plan as stored, as a resume would
            decision = done["plan"]
            run.counts = dict(decision["counts"])
            run.full_upload = decision["full"]
            run.state = EXPORTING
            run.progress_total = decision["counts"].get("rows_to_send", 0)
            self._save(run)
            if "exported" not in done:
                result = self._export(sync, run, decision)
                self.store.checkpoint(run.run_id, "exported", result)
                pause_point("exported")
            if "snapshot" not in done:
                self._apply_snapshot(run, decision)
                self.store.checkpoint(run.run_id, "snapshot", {})
                pause_point("snapshot")
            snap.clear_run(self.wh, run.run_id)
            run.state, run.error = decision["outcome"], decision.get("error")
        except LeaseLost:
            raise  # the run belongs to the worker that took the lease: record nothing
        except (UserError, OperationalError) as err:
            run.state, run.error = FAILED, literal_error(str(err))
            log.warning("run.failed", run_id=run.run_id, error=str(err))
            self._discard(run)
        except Exception as err:  # a bug: fail the run (the next one starts afresh), keep the traceback
            run.state, run.error = FAILED, literal_error(f"unexpected {type(err).__name__}: {err}")
            self._discard(run)
            run.finished_at = now()
            self._save(run)
            raise
        run.finished_at = now()
        run.progress_done = run.progress_total if run.state == SUCCEEDED else run.progress_done
        self._save(run)
        return run

    def _discard(self, run: RunRecord) -> None:
        """Drop a failed run's staging rows: a failed run is never resumed (the next is new)."""
        try:
            snap.clear_run(self.wh, run.run_id)
        except OperationalError as err:  # the warehouse may be what failed; the rows are inert
            log.warning("run.cleanup_failed", run_id=run.run_id, error=str(err))

    def _mine(self, run: RunRecord, alias: str = "") -> str:
        """SQL filter for this sync's rows of the snapshot tables."""
        return snap.sync_filter(self.project.config.name, run.audience, run.destination, alias)

    # ---- build: stage, diff, hash, decide -----------------------------------------------------------
    def _stage_query(self, sync: Sync, run: RunRecord) -> exp.Select:
        """Definition members plus previously exported ones, with consent stage and fingerprint."""
        project, catalog = self.project, self.project.catalog
        assert catalog is not None
        dest = sync.destination
        key = col(catalog.profile_key, PROFILE_ALIAS)
        where = exp.false() if sync.withdraw else \
            predicate(sync.audience.where, CompileContext(catalog, project.audiences, run.as_of))
        condition = exp.and_(exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null())), where)
        previous = (exp.select(exp.alias_(col("member_key", "m"), "k"), exp.alias_(col("fingerprint", "m"), "f"))
                    .from_(table_ref(_tbl("members"), "m")).where(self._mine(run, "m")))
        base = exp.select(exp.alias_(key.copy(), "profile_key")).from_(table_ref(catalog.profile, PROFILE_ALIAS))
        if condition.find(exp.Select) is None:
            # Only profile columns: evaluate it on the row itself (no self-join of the profiles).
            in_definition: exp.Expression = exp.Paren(this=condition)
        else:  # events, ranks, other audiences: evaluate it once, as a join
            definition = (exp.select(key.copy()).from_(table_ref(catalog.profile, "d0")).where(condition, copy=False)
                          .transform(_rename_alias(PROFILE_ALIAS, "d0")))  # predicate() is written over alias p
            assert isinstance(definition, exp.Select)  # transform() keeps the root: a Select
            definition.set("expressions", [exp.alias_(col(catalog.profile_key, "d0"), "k")])
            base = base.join(definition.subquery("dq"), on=exp.EQ(this=col("k", "dq"), expression=key.copy()),
                             join_type="left")
            in_definition = exp.Not(this=exp.Is(this=col("k", "dq"), expression=exp.Null()))
        base = (base.join(previous.subquery("pq"), join_type="left", on=_key_match(col("k", "pq"), key, catalog))
                .where(exp.or_(in_definition.copy(), exp.Not(this=exp.Is(this=col("k", "pq"), expression=exp.Null())))))
        q = consent_query(base, catalog, policy_of(project), target_of(dest), run.as_of, audience=run.audience,
                          holdout_percent=float(sync.audience.holdout), dialect=self.wh.dialect,
                          consent_table=project.consent_table, members_cte=False,
                          current=usable_current(self.wh, project.consent_table, run.as_of, rebuild_stale=False))
        return q.select(exp.alias_(in_definition, "in_definition"),
                        exp.alias_(snap.profile_fingerprint(catalog, dest.format, dest.identifiers, self.wh.dialect),
                                   "fingerprint"),
                        exp.alias_(col("f", "pq"), "prev_fingerprint"), copy=False)

    def preview(self, sync: Sync, *, as_of: datetime) -> dict[str, Any]:
        """What a run would send now (counts only; nothing is hashed, sent or kept)."""
        snap.ensure_schema(self.wh)
        run = RunRecord(run_id=f"preview-{uuid.uuid4().hex[:12]}", audience=sync.audience.name,
                        destination=sync.destination.name, mode=sync.mode, state=PENDING,
                        as_of=as_of.astimezone(UTC), created_at=now())
        try:
            return self._build_plan(sync, run, preview=True)
        finally:
            snap.clear_run(self.wh, run.run_id)

    def _build_plan(self, sync: Sync, run: RunRecord, *, preview: bool = False) -> dict[str, Any]:
        wh, rid, t, stage = self.wh, quoted(run.run_id), snap.table, self._stage
        snap.clear_run(wh, run.run_id)
        current, unchanged = _current(""), _unchanged("")
        staged = f"NOT ({unchanged}) AND ({current} OR prev_fingerprint IS NOT NULL)"
        to_add = f"{current} AND NOT ({unchanged})"
        kinds = sync.destination.identifiers
        # raw identifiers travel only with the members to add (NULL for everyone else)
        raw = [f"CASE WHEN {to_add} THEN CAST({v} AS VARCHAR) END AS {c}" for c, v in
               [("country", COUNTRY), *((f"id_{k}", identifier_alias(k) if k in kinds else "NULL")
                                        for k in IDENTIFIER_TYPES)]]
        names = ", ".join(["country", *(f"id_{k}" for k in IDENTIFIER_TYPES)])
        columns = f"profile_key, {STAGE}, {HELD_OUT}, in_definition, fingerprint, prev_fingerprint, {', '.join(raw)}"
        wh.execute(f"INSERT INTO {stage} (run_id, member_key, consent_stage, held_out, in_definition, fingerprint, "
                   f"prev_fingerprint, n, {names}) "
                   f"WITH s AS MATERIALIZED (SELECT {columns} FROM "
                   f"({self._stage_query(sync, run).sql(dialect=wh.dialect)}) AS q) "
                   f"SELECT {rid}, CAST(profile_key AS VARCHAR), {STAGE}, {HELD_OUT}, in_definition, fingerprint, "
                   f"prev_fingerprint, 1, {names} FROM s WHERE {staged} "
                   f"UNION ALL SELECT {rid}, NULL, {STAGE}, {HELD_OUT}, in_definition, NULL, "
                   f"CASE WHEN prev_fingerprint IS NOT NULL THEN '' END, COUNT(*), "
                   f"{', '.join('NULL' for _ in names.split(', '))} "
                   f"FROM s WHERE NOT ({staged}) GROUP BY {STAGE}, {HELD_OUT}, in_definition, "
                   "CASE WHEN prev_fingerprint IS NOT NULL THEN '' END")
        self._renew()
        previous = int(wh.query(f"SELECT COUNT(*) FROM {t('members')} WHERE {self._mine(run)}")[0][0])
        # members whose profile still exists: those staged, and the unchanged ones summed up
        seen = int(wh.query(f"SELECT COUNT(DISTINCT member_key) + (SELECT COALESCE(SUM(n), 0) FROM {stage} "
                            f"WHERE run_id = {rid} AND member_key IS NULL AND prev_fingerprint IS NOT NULL) "
                            f"FROM {stage} WHERE run_id = {rid} AND prev_fingerprint IS NOT NULL")[0][0])
        deletions = seen != previous
        full = previous == 0 or sync.mode == "replace"
        funnel = self._funnel(rid)
        changed = f"s.run_id = {rid} AND s.member_key IS NOT NULL AND {_current('s')} AND NOT ({_unchanged('s')})"
        changes = int(wh.query(f"SELECT COUNT(*) FROM {stage} s WHERE {changed}")[0][0])
        added = self._hash_adds(sync, run, changed) if changes and not preview else changes  # preview: nothing hashed
        invalid = changes - added
        self._renew()
        if full and not preview:  # the whole list: unchanged members keep the hashes sent before
            wh.execute(f"INSERT INTO {t('plan_adds')} (run_id, member_key, fingerprint, id_type, hashed) "
                       f"SELECT {rid}, x.member_key, x.fingerprint, x.id_type, x.hashed FROM {t('sent')} x "
                       f"JOIN ({self._staying_unchanged(run, deletions)}) AS m "
                       f"ON m.member_key = x.member_key AND m.fingerprint = x.fingerprint "
                       f"WHERE {self._mine(run, 'x')}")
        self._plan_removes(run, sync.mode, deletions, withdraw=bool(sync.withdraw))
        wh.execute(f"DELETE FROM {stage} WHERE run_id = {rid}")  # scratch: the plan tables say it all now
        return self._decide(sync, run, full=full, funnel=funnel, invalid=invalid, new=added,
                            previous=previous, preview=preview)

    def _staying_unchanged(self, run: RunRecord, deletions: bool) -> str:
        """SQL for the (member_key, fingerprint) of members who stay unchanged: in the snapshot,
        not staged (the stage lists every other one), and with a profile (when some were deleted)."""
        rid = quoted(run.run_id)
        sql = (f"SELECT m.member_key, m.fingerprint FROM {snap.table('members')} m WHERE {self._mine(run, 'm')} "
               f"AND NOT EXISTS (SELECT 1 FROM {self._stage} s WHERE s.run_id = {rid} AND s.member_key = m.member_key)")
        return sql + f" AND {self._profile_exists('m')}" if deletions else sql

    def _profile_exists(self, alias: str) -> str:
        """SQL: the snapshot row `alias` still has a profile in the warehouse."""
        catalog = self.project.catalog
        assert catalog is not None
        p = PROFILE_ALIAS
        match = _key_match(col("member_key", alias), col(catalog.profile_key, p), catalog)
        return exp.Exists(this=exp.select("1").from_(table_ref(catalog.profile, p)).where(match)).sql(
            dialect=self.wh.dialect)

    def _funnel(self, rid: str) -> dict[str, int]:
        from consent_filter.funnel import Funnel

        rows = self.wh.query(f"SELECT {STAGE}, {HELD_OUT}, SUM(n) FROM {self._stage} "
                             f"WHERE run_id = {rid} AND in_definition GROUP BY {STAGE}, {HELD_OUT}")
        return Funnel.from_rows((int(s), bool(h), int(n)) for s, h, n in rows).as_dict()

    def _hash_adds(self, sync: Sync, run: RunRecord, changed: str) -> int:
        """Hash the identifiers of new/changed members (only those) into plan_adds.

        The raw identifiers come from the stage row of the same build, so the hashes always
        belong to the fingerprint recorded with them. Identifier types the warehouse can hash
        exactly (`sql_hashed_expression`) are hashed there by one `INSERT ... SELECT` on DuckDB
        (`HASHES_IN_WAREHOUSE`): no raw value leaves the warehouse and DuckDB hashes on every
        core; the rest (phones, and every type on other warehouses) is streamed through Python.
        Returns how many of them are added (have a valid identifier left), counted in SQL so
        that the two paths need not report to each other.
        """
        from exporters.hashing import check_kinds, sql_hashed_expression

        wh, dest, rid = self.wh, sync.destination, quoted(run.run_id)
        kinds = list(dest.identifiers)
        check_kinds(dest.format, kinds)  # a type the format refuses fails the run before any hashing
        in_sql: dict[str, exp.Expr] = {}
        if wh.dialect in HASHES_IN_WAREHOUSE:
            for kind in kinds:
                expression = sql_hashed_expression(kind, col(f"id_{kind}", "s"), dest.format, wh.dialect)
                if expression is not None:
                    in_sql[kind] = expression
        if in_sql:
            wh.execute(self._hash_in_sql(run, changed, in_sql))
        in_python = [kind for kind in kinds if kind not in in_sql]
        if in_python:
            self._hash_in_python(run, changed, in_python, dest.format)
        # The run's plan_adds rows are, so far, exactly the hashes of changed members (the build
        # cleared them first; a full run adds the unchanged members' rows only after this), so the
        # members left without a row are the others. Counting distinct keys costs a fifth of an
        # anti-join with the stage (DuckDB, 1M members).
        return int(wh.query(f"SELECT COUNT(DISTINCT member_key) FROM {snap.table('plan_adds')} "
                            f"WHERE run_id = {rid}")[0][0])

    def _hash_in_sql(self, run: RunRecord, changed: str, expressions: dict[str, exp.Expr]) -> str:
        """The `INSERT ... SELECT` hashing `expressions` (type -> hash of stage column `s.id_<type>`).

        One pass over the stage: the types and their hashes are two lists unnested side by side,
        one row per (member, type), keeping non-NULL hashes. Both engines evaluate a hash twice
        when a filter on it can be pushed under the projection (a `UNION ALL` of one SELECT per
        type, or one SELECT filtered on its hash); `UNNEST` keeps the filter above it. Measured
        (email + MAID, sha256, DuckDB, 1M members): UNNEST 1.1-1.3 s, LATERAL (VALUES ...)
        1.8-2.0 s, UNION ALL 1.8-2.3 s.
        """
        dialect, rid = self.wh.dialect, quoted(run.run_id)
        types = exp.Unnest(expressions=[exp.Array(expressions=[exp.Literal.string(k) for k in expressions])])
        hashes = exp.Unnest(expressions=[exp.Array(expressions=list(expressions.values()))])
        return (f"INSERT INTO {snap.table('plan_adds')} (run_id, member_key, fingerprint, id_type, hashed) "
                f"SELECT {rid}, h.member_key, h.fingerprint, h.id_type, h.hashed "
                f"FROM (SELECT s.member_key, s.fingerprint, {types.sql(dialect=dialect)} AS id_type, "
                f"{hashes.sql(dialect=dialect)} AS hashed FROM {self._stage} s "
                f"WHERE {changed} AND ({_holding_any(expressions)})) AS h "
                "WHERE h.hashed IS NOT NULL")

    def _hash_in_python(self, run: RunRecord, changed: str, kinds: Sequence[str], fmt: str) -> None:
        """Stream the raw values of `kinds` (only rows holding one) and bulk-insert their hashes."""
        from exporters.hashing import hash_rows

        sql = (f"SELECT s.member_key, s.fingerprint, s.country, {', '.join(f's.id_{kind}' for kind in kinds)} "
               f"FROM {self._stage} s WHERE {changed} AND ({_holding_any(kinds)})")

        def rows() -> Iterator[tuple[str, str, str, str, str]]:
            rid = run.run_id
            for batch in self.wh.stream(sql, HASH_BATCH):
                inputs = [(*r[3:], r[2]) for r in batch]
                for r, hashed in zip(batch, hash_rows(fmt, kinds, inputs), strict=True):
                    for kind, value in zip(kinds, hashed, strict=True):
                        if value is not None:
                            yield (rid, r[0], r[1], kind, value)

        columns = ["run_id", "member_key", "fingerprint", "id_type", "hashed"]
        self.wh.bulk_insert(snap.table("plan_adds"), columns, rows())

    def _plan_removes(self, run: RunRecord, mode: str, deletions: bool, *, withdraw: bool = False) -> None:
        """Every sent tuple that should leave, with why, and its hashes; forced reasons go out in
        every mode.

        Candidates come from the stage (only members whose state changed are staged), so the
        members who stay cost no join with `sent`: only the few who left or changed are looked up
        there. Two rarer cases are added when they can occur: profiles deleted from the
        warehouse (the stage then accounts for fewer members than the snapshot holds), and older
        tuples that an additive run kept for members who stay.
        """
        t, stage, current, rid = snap.table, self._stage, _current("s"), quoted(run.run_id)
        by_rule = "".join(f"WHEN s.{STAGE} = {rule} THEN '{RULE_NAMES[rule]}' " for rule in snap.FORCED_RULES)
        reason = (f"CASE {by_rule}"
                  f"WHEN NOT s.in_definition THEN '{'sensitive' if withdraw else 'left'}' "
                  f"WHEN s.{HELD_OUT} THEN 'held_out' "
                  f"WHEN s.{STAGE} <> {PASSES} THEN '{RULE_NAMES[NO_IDENTIFIER]}' ELSE 'changed' END")
        # (member, why, the fingerprint it keeps if it stays)
        parts = [f"SELECT s.member_key, {reason} AS reason, CASE WHEN {current} THEN s.fingerprint END AS keep "
                 f"FROM {stage} s WHERE s.run_id = {rid} AND s.member_key IS NOT NULL "
                 "AND s.prev_fingerprint IS NOT NULL"]
        if deletions:
            parts.append(f"SELECT m.member_key, 'deleted' AS reason, CAST(NULL AS VARCHAR) AS keep "
                         f"FROM {t('members')} m WHERE {self._mine(run, 'm')} AND NOT {self._profile_exists('m')}")
        if mode != "additive" and self._additive_tuples_may_remain(run):
            parts.append(f"SELECT u.member_key, 'changed' AS reason, u.fingerprint AS keep "
                         f"FROM ({self._staying_unchanged(run, deletions)}) AS u")
        leaving = " UNION ALL ".join(parts)
        forced = "(" + " OR ".join(f"c.reason = {quoted(r)}" for r in snap.FORCED_REASONS) + ")"
        only_forced = "" if mode != "additive" else f" AND {forced}"  # additive keeps the rest
        self.wh.execute(
            f"INSERT INTO {t('plan_remove_rows')} (run_id, member_key, fingerprint, id_type, hashed) "
            f"SELECT {rid}, x.member_key, x.fingerprint, x.id_type, x.hashed FROM {t('sent')} x "
            f"JOIN ({leaving}) AS c ON c.member_key = x.member_key "
            f"WHERE {self._mine(run, 'x')} AND (c.keep IS NULL OR x.fingerprint <> c.keep){only_forced}")
        self.wh.execute(
            f"INSERT INTO {t('plan_removes')} (run_id, member_key, fingerprint, forced, reason, shared) "
            f"SELECT DISTINCT {rid}, x.member_key, x.fingerprint, {forced}, c.reason, FALSE "
            f"FROM {t('plan_remove_rows')} x JOIN ({leaving}) AS c ON c.member_key = x.member_key "
            f"WHERE x.run_id = {rid} AND (c.keep IS NULL OR x.fingerprint <> c.keep)")

    def _additive_tuples_may_remain(self, run: RunRecord) -> bool:
        """True when the last successful run of this sync was additive: it may have kept the
        old tuples of members whose identifiers changed, which a mirror run must now remove."""
        last = next((r for r in self.store.runs_of_sync(run.audience, run.destination)
                     if r.state == SUCCEEDED and r.run_id != run.run_id), None)
        return last is not None and last.mode == "additive"

    def _decide(self, sync: Sync, run: RunRecord, *, full: bool, funnel: dict[str, int], invalid: int, new: int,
                previous: int, preview: bool) -> dict[str, Any]:
        """What this run sends: everything, only removals (held / too small), and in which mode."""
        wh, rid, dest, t = self.wh, quoted(run.run_id), sync.destination, snap.table
        count = lambda sql: int(wh.query(sql)[0][0])  # noqa: E731
        exportable = funnel["exportable"] - invalid
        members = 0
        if full:  # a preview hashes nothing: the list is every current member
            members = exportable if preview else \
                count(f"SELECT COUNT(DISTINCT member_key) FROM {t('plan_adds')} WHERE run_id = {rid}")
        removes, forced = (int(n) for n in wh.query(f"SELECT COUNT(*), COUNT(CASE WHEN forced THEN 1 END) "
                                                    f"FROM {t('plan_removes')} WHERE run_id = {rid}")[0])
        funnel = {**funnel, "no_identifier": funnel["no_identifier"] + invalid, "exportable": exportable}
        outcome, send_adds, send_removes = SUCCEEDED, True, "all"
        too_small = exportable < dest.min_size
        held = not too_small and bool(previous) and not run.force and (
            new > dest.max_change * previous or (removes - forced) > dest.max_change * previous)
        if too_small:  # consent.md rule 5: nothing is added, removals are always sent
            outcome, send_adds = FAILED, False
        elif held:  # only the removals consent, suppression, age and deletion demand
            outcome, send_adds, send_removes = HELD, False, "forced"
        full = full and send_adds
        if full:  # a full list replaces: departures are implicit
            send_removes = "none"
        if send_removes != "none" and not preview and (forced if send_removes == "forced" else removes):
            self._mark_shared(run, dest.identifiers, send_adds=send_adds, only_forced=send_removes == "forced")
        removes_sent = 0 if send_removes == "none" else count(
            f"SELECT COUNT(*) FROM {t('plan_removes')} WHERE run_id = {rid} AND NOT shared"
            + (" AND forced" if send_removes == "forced" else ""))
        adds_sent = members if full else (new if send_adds else 0)
        error = None  # a template: {name} is a count of `counts`, rendered where it is shown
        if sync.withdraw:
            error = literal_error(f"audience {run.audience} now uses sensitive data ({sync.withdraw}); nothing "
                                  f"was added and every member exported to {dest.name} was removed")
        elif too_small:
            error = (literal_error(f"audience {run.audience} is too small for {dest.name}: fewer than "
                                   f"{dest.min_size} profiles remain after consent and holdout (min_size); "
                                   "nothing was added")
                     + ("; {removes_sent} removals were sent" if removes_sent else ""))
        elif held:
            error = ("held: {adds} adds and {unforced_removes} removes exceed max_change "
                     + literal_error(f"({dest.max_change:.0%} of the ")
                     + "{previous_members} members last exported); review and rerun with --force"
                     + ("; {removes_sent} removals required by consent, suppression, age or deletion "
                        "were sent" if removes_sent else ""))
        counts = {**{f"funnel_{k}": v for k, v in funnel.items()}, "adds": new, "removes": removes,
                  "forced_removes": forced, "unforced_removes": removes - forced,
                  "previous_members": previous, "rows_to_send": adds_sent + removes_sent,
                  "adds_sent": adds_sent, "removes_sent": removes_sent}
        # Replace sends the whole list; a replace-mode run that may only remove sends a mirror delta.
        mode = "replace" if full else ("mirror" if sync.mode == "replace" else sync.mode)
        return {"full": full, "send_adds": send_adds, "send_removes": send_removes, "mode": mode,
                "outcome": outcome, "error": error, "counts": counts}

    def _mark_shared(self, run: RunRecord, kinds: Sequence[str], *, send_adds: bool, only_forced: bool) -> None:
        """Flag removals whose hashed tuple stays at the destination through another row.

        After this run the destination holds: every sent tuple not removed now, plus this run's
        adds. A removal whose signature equals one of those must not be sent (the receiver would
        drop the member who stays). Only rows sharing a hashed value with a removal are looked
        at (equi-joins on the hash), so this costs little however large the audience.
        """
        t, rid = snap.table, quoted(run.run_id)
        sel = f"r.run_id = {rid}" + (" AND r.forced" if only_forced else "")
        removed = (f"SELECT x.member_key, x.fingerprint, x.id_type, x.hashed FROM {t('plan_remove_rows')} x "
                   f"JOIN {t('plan_removes')} r ON r.member_key = x.member_key AND r.fingerprint = x.fingerprint "
                   f"AND {sel} WHERE x.run_id = {rid}")
        values = f"SELECT DISTINCT id_type, hashed FROM ({removed}) AS v"
        near = (f"SELECT DISTINCT x.member_key, x.fingerprint FROM {t('sent')} x JOIN ({values}) AS v "
                f"ON v.hashed = x.hashed AND v.id_type = x.id_type WHERE {self._mine(run, 'x')}")
        staying = (f"SELECT x.member_key, x.fingerprint, x.id_type, x.hashed FROM {t('sent')} x "
                   f"JOIN ({near}) AS k ON k.member_key = x.member_key AND k.fingerprint = x.fingerprint "
                   f"WHERE {self._mine(run, 'x')} AND NOT EXISTS (SELECT 1 FROM {t('plan_removes')} r "
                   f"WHERE {sel} AND r.member_key = x.member_key AND r.fingerprint = x.fingerprint)")
        added = (f"SELECT DISTINCT a.member_key, a.fingerprint FROM {t('plan_adds')} a JOIN ({values}) AS v "
                 f"ON v.hashed = a.hashed AND v.id_type = a.id_type WHERE a.run_id = {rid}") if send_adds else None
        # Nearly always no other row shares a hashed value with a removal: a cheap count settles it.
        others = (f"SELECT COUNT(*) FROM ({near}) AS k WHERE NOT EXISTS (SELECT 1 FROM {t('plan_removes')} r "
                  f"WHERE {sel} AND r.member_key = k.member_key AND r.fingerprint = k.fingerprint)")
        if added:
            others += f" UNION ALL SELECT COUNT(*) FROM ({added}) AS k"
        if not any(int(n) for (n,) in self.wh.query(others)):
            return
        if added:
            staying += (f" UNION ALL SELECT a.member_key, a.fingerprint, a.id_type, a.hashed FROM {t('plan_adds')} a "
                        f"JOIN ({added}) AS k ON k.member_key = a.member_key AND k.fingerprint = a.fingerprint "
                        f"WHERE a.run_id = {rid}")
        after = (f"SELECT {snap.signature(kinds, 'a')} AS sig FROM ({staying}) AS a "
                 "GROUP BY a.member_key, a.fingerprint")
        gone = (f"SELECT g.member_key, g.fingerprint, {snap.signature(kinds, 'g')} AS sig FROM ({removed}) AS g "
                "GROUP BY g.member_key, g.fingerprint")
        self.wh.execute(
            f"UPDATE {t('plan_removes')} SET shared = TRUE WHERE run_id = {rid}"
            + (" AND forced" if only_forced else "")
            + f" AND (member_key, fingerprint) IN (SELECT c.member_key, c.fingerprint FROM ({gone}) AS c "
            f"JOIN ({after}) AS f ON f.sig = c.sig)")

    # ---- export ---------------------------------------------------------------------------------
    def _export(self, sync: Sync, run: RunRecord, decision: dict[str, Any]) -> dict[str, Any]:
        wh, rid, dest, t = self.wh, quoted(run.run_id), sync.destination, snap.table
        kinds = tuple(dest.identifiers)
        full, send_adds, send_removes = decision["full"], decision["send_adds"], decision["send_removes"]
        if not full and not send_adds and not decision["counts"]["removes_sent"]:
            return {"skipped": True}

        only_forced = " AND r.forced" if send_removes == "forced" else ""
        # plan_adds holds the new/changed tuples, plus every current member on a full run
        add_rows = snap.pivot(t("plan_adds"), f"run_id = {rid}", kinds) if send_adds or full else None
        removed = (f"(SELECT x.* FROM {t('plan_remove_rows')} x JOIN {t('plan_removes')} r "
                   f"ON r.member_key = x.member_key AND r.fingerprint = x.fingerprint AND r.run_id = {rid} "
                   f"AND NOT r.shared{only_forced} WHERE x.run_id = {rid}) AS rs")
        remove_rows = snap.pivot(removed, "1 = 1", kinds) if send_removes != "none" else None

        manifest = {
            "audience": run.audience, "run_id": run.run_id, "destination": dest.name, "format": dest.format,
            "mode": decision["mode"], "as_of": run.as_of.isoformat(),
            "definition": {"file": run.definition_file, "git_commit": run.git_commit, "content_hash": run.content_hash},
            "consent_funnel": {k[len("funnel_"):]: v for k, v in decision["counts"].items() if k.startswith("funnel_")},
            "description": sync.audience.description, "owner": sync.audience.owner,
        }
        plan = ExportPlan(run.run_id, run.audience, decision["mode"], full, kinds,
                          _PivotList(wh, add_rows, kinds), _PivotList(wh, remove_rows, kinds), manifest)
        return sink_for(dest, self.project.config).send(plan, _Checkpoints(self, run))

    # ---- snapshot ---------------------------------------------------------------------------------
    def _apply_snapshot(self, run: RunRecord, decision: dict[str, Any]) -> None:
        """Record what the destination now holds; idempotent, in one warehouse transaction."""
        rid, t = quoted(run.run_id), snap.table
        mine = self._mine(run)
        project, audience, destination = (quoted(v) for v in (self.project.config.name, run.audience,
                                                                 run.destination))
        added = f"SELECT DISTINCT member_key, fingerprint FROM {t('plan_adds')} WHERE run_id = {rid}"
        adds = decision["send_adds"] or decision["full"]
        if decision["full"]:  # the destination now holds exactly the list
            statements = [f"DELETE FROM {t('sent')} WHERE {mine}", f"DELETE FROM {t('members')} WHERE {mine}"]
        else:  # one pass over each table: the tuples removed (shared ones too: this member no
            # longer holds them) and those about to be inserted again
            removed = f"SELECT member_key, fingerprint FROM {t('plan_removes')} WHERE run_id = {rid}" + (
                " AND forced" if decision["send_removes"] == "forced" else "")
            parts = [q for q, on in ((removed, decision["send_removes"] != "none"), (added, adds)) if on]
            gone = " UNION ".join(f"SELECT member_key, fingerprint FROM ({q}) AS g{i}" for i, q in enumerate(parts))
            statements = [
                f"DELETE FROM {t('sent')} WHERE {mine} AND (member_key, fingerprint) IN ({gone})",
                f"DELETE FROM {t('members')} WHERE {mine} AND ((member_key, fingerprint) IN ({gone})"
                + (f" OR member_key IN (SELECT member_key FROM ({added}) AS a))" if adds else ")"),
            ] if parts else []
        if adds:
            statements += [
                f"INSERT INTO {t('sent')} (project, audience, destination, member_key, fingerprint, id_type, hashed) "
                f"SELECT {project}, {audience}, {destination}, member_key, fingerprint, id_type, hashed "
                f"FROM {t('plan_adds')} WHERE run_id = {rid}",
                f"INSERT INTO {t('members')} (project, audience, destination, member_key, fingerprint) "
                f"SELECT {project}, {audience}, {destination}, member_key, fingerprint FROM ({added}) AS a",
            ]
        if statements:
            self.wh.transaction(statements)


def _holding_any(kinds: Iterable[str]) -> str:
    """SQL over stage rows `s`: the member holds a raw value of at least one of `kinds`."""
    return " OR ".join(f"s.id_{kind} IS NOT NULL" for kind in kinds)


def _current(alias: str) -> str:
    """SQL over stage rows: the profile is to be at the destination after this run."""
    a = f"{alias}." if alias else ""
    return f"{a}in_definition AND {a}{STAGE} = {PASSES} AND NOT {a}{HELD_OUT}"


def _unchanged(alias: str) -> str:
    """SQL over stage rows (never NULL): current, and already there with these identifiers."""
    a = f"{alias}." if alias else ""
    return f"{_current(alias)} AND {a}prev_fingerprint IS NOT NULL AND {a}prev_fingerprint = {a}fingerprint"


_INTEGER_TYPES = ("tinyint", "smallint", "int2", "integer", "int", "int4", "bigint", "int8")


def _key_match(member_key: exp.Expression, key: exp.Column, catalog: Any) -> exp.Expression:
    """member_key (text) = the profile key: joined on integers when the key is an integer type,
    which is much faster than casting every profile's key to text."""
    column = catalog.profile.columns.get(catalog.profile_key)
    if column is not None and column.raw_type.strip().lower() in _INTEGER_TYPES:
        return exp.EQ(this=exp.cast(member_key, exp.DataType.Type.BIGINT), expression=key.copy())
    return exp.EQ(this=member_key, expression=exp.cast(key.copy(), exp.DataType.Type.VARCHAR))


def _tbl(name: str):
    from dsl.catalog import Table

    return Table(snap.table(name), {})


def _rename_alias(old: str, new: str) -> Callable[[exp.Expression], exp.Expression]:
    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table == old:
            node.set("table", exp.to_identifier(new))
        return node

    return rename


@dataclass(frozen=True)
class _PivotList:
    """A ``sinks.HashedList`` read from the run's plan (``snapshots.pivot``); no pivot: empty."""

    wh: Warehouse
    pivot: str | None
    kinds: tuple[str, ...]

    def rows(self) -> Iterator[Sequence[str | None]]:
        """For gRPC batches: one tuple of hashed values per member."""
        if self.pivot:
            yield from (row[2:] for row in snap.iter_rows(self.wh, snap.ordered(self.pivot)))

    def blocks(self) -> Iterator[LineBlock]:
        """For file/S3 parts: the same rows as CSV lines built by the warehouse, in blocks."""
        if self.pivot:
            yield from self.wh.line_blocks(snap.lines(self.pivot, self.kinds, self.wh.dialect))


class _Checkpoints:
    def __init__(self, engine: RunEngine, run: RunRecord) -> None:
        self.engine, self.run = engine, run

    def done(self) -> dict[str, dict[str, Any]]:
        return self.engine.store.checkpoints(self.run.run_id)

    def mark(self, step: str, info: dict[str, Any]) -> None:
        self.engine.store.checkpoint(self.run.run_id, step, info)
        self.engine._renew()
        pause_point(step)

    def progress(self, done: int) -> None:
        self.run.progress_done = done
        self.engine._save(self.run)

