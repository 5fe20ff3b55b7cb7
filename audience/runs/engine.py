"""One refresh of one sync: build → plan → export → record, resumable at every step.

Life cycle: pending → building → exporting → succeeded | failed | held. The plan (which
members to add and which hashes to remove) is frozen in the warehouse before anything is sent,
so a run that dies and is started again sends exactly the same batches and files; the sinks
skip what the checkpoints say was acknowledged, and the receiver ignores repeated sequence
numbers. The snapshot of what the destination holds is updated only after the export.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlglot import exp

from audience.config import DestinationConfig
from audience.consented import _consent_table, policy_of, target_of
from audience.errors import OperationalError, UserError
from audience.project import Project
from audience.runs import snapshots as snap
from audience.runs.model import BUILDING, EXPORTING, FAILED, HELD, PENDING, SUCCEEDED, RunRecord
from audience.runs.schedule import sync_due
from audience.runs.sinks import ExportPlan, sink_for
from audience.runs.store import StateStore, now, worker_id
from audience.runs.testhook import pause_point
from consent_filter.policy import NO_PERMISSION, PASSES, SUPPRESSED, UNDER_AGE
from consent_filter.query import COUNTRY, HELD_OUT, STAGE, consent_query, identifier_alias
from dsl import ast
from dsl.compiler import PROFILE_ALIAS, CompileContext, col, predicate, table_ref

log = structlog.get_logger()
LEASE_TTL = timedelta(minutes=2)
HASH_BATCH = 50_000


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

    def __init__(self, project: Project, store: StateStore, *, progress: Callable[[RunRecord], None] | None = None) -> None:
        self.project = project
        self.store = store
        self.wh = project.warehouse
        self.owner = worker_id()
        self.on_progress = progress or (lambda run: None)
        self._lease: str | None = None

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
        for run in self.store.runs_of_sync(sync.audience.name, sync.destination.name):
            if run.state in (PENDING, BUILDING, EXPORTING):
                log.info("run.resume", run_id=run.run_id, state=run.state)
                if force and not run.force:
                    run.force = True
                return run
            break
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
            if "plan" not in self.store.checkpoints(run.run_id):
                run.state = BUILDING
                self._save(run)
                decision = self._build_plan(sync, run)
                self.store.checkpoint(run.run_id, "plan", decision)
                pause_point("plan")
            decision = self.store.checkpoints(run.run_id)["plan"]
            run.counts = dict(decision["counts"])
            run.full_upload = decision["full"]
            run.state = EXPORTING
            run.progress_total = decision["counts"].get("rows_to_send", 0)
            self._save(run)
            if "exported" not in self.store.checkpoints(run.run_id):
                result = self._export(sync, run, decision)
                self.store.checkpoint(run.run_id, "exported", result)
                pause_point("exported")
            if "snapshot" not in self.store.checkpoints(run.run_id):
                self._apply_snapshot(run, decision)
                self.store.checkpoint(run.run_id, "snapshot", {})
                pause_point("snapshot")
            snap.clear_run(self.wh, run.run_id)
            run.state, run.error = decision["outcome"], decision.get("error")
        except LeaseLost:
            raise  # the run belongs to the worker that took the lease: record nothing
        except (UserError, OperationalError) as err:
            run.state, run.error = FAILED, str(err)
            log.warning("run.failed", run_id=run.run_id, error=str(err))
            self._discard(run)
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
        ctx = CompileContext(catalog, project.audiences, run.as_of)
        definition = (exp.select(key.copy()).from_(table_ref(catalog.profile, "d0"))
                      .where(predicate(sync.audience.where, ctx), copy=False))
        # predicate() is written over alias p; rebuild it over d0 by renaming the table alias.
        definition = definition.transform(_rename_alias(PROFILE_ALIAS, "d0"))
        definition.set("expressions", [exp.alias_(col(catalog.profile_key, "d0"), "k")])
        previous = (exp.select(exp.alias_(col("member_key", "m"), "k")).from_(table_ref(_tbl("members"), "m"))
                    .where(self._mine(run, "m")))
        base = (exp.select(exp.alias_(key.copy(), "profile_key")).from_(table_ref(catalog.profile, PROFILE_ALIAS))
                .join(definition.subquery("dq"), on=exp.EQ(this=col("k", "dq"), expression=key.copy()), join_type="left")
                .join(previous.subquery("pq"), on=exp.EQ(this=col("k", "pq"), expression=exp.cast(key.copy(), exp.DataType.Type.VARCHAR)),
                      join_type="left")
                .where(exp.or_(exp.Not(this=exp.Is(this=col("k", "dq"), expression=exp.Null())),
                               exp.Not(this=exp.Is(this=col("k", "pq"), expression=exp.Null())))))
        q = consent_query(base, catalog, policy_of(project), target_of(dest), run.as_of, audience=run.audience,
                          holdout_percent=float(sync.audience.holdout), dialect=self.wh.dialect,
                          consent_table=_consent_table(project), members_cte=False)
        return q.select(exp.alias_(exp.Not(this=exp.Is(this=col("k", "dq"), expression=exp.Null())), "in_definition"),
                        exp.alias_(snap.profile_fingerprint(catalog, dest.format, dest.identifiers), "fingerprint"),
                        copy=False)

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
        wh, rid, t = self.wh, snap.lit(run.run_id), snap.table
        snap.clear_run(wh, run.run_id)
        stage_sql = self._stage_query(sync, run).sql(dialect=wh.dialect)
        wh.execute(f"INSERT INTO {t('stage')} (run_id, member_key, consent_stage, held_out, in_definition, fingerprint) "
                   f"SELECT {rid}, CAST(profile_key AS VARCHAR), {STAGE}, {HELD_OUT}, in_definition, fingerprint "
                   f"FROM ({stage_sql}) AS s")
        self._renew()
        previous = int(wh.query(f"SELECT COUNT(*) FROM {t('members')} WHERE {self._mine(run)}")[0][0])
        full = previous == 0 or sync.mode == "replace"
        funnel = self._funnel(rid)
        # who is to be added: current members that are new, or whose identifiers changed
        current = f"s.run_id = {rid} AND s.in_definition AND s.{STAGE} = {PASSES} AND NOT s.{HELD_OUT}"
        changed = (f"SELECT s.member_key, s.fingerprint FROM {t('stage')} s LEFT JOIN {t('members')} m "
                   f"ON m.member_key = s.member_key AND {self._mine(run, 'm')} "
                   f"WHERE {current} AND (m.member_key IS NULL OR m.fingerprint <> s.fingerprint)")
        invalid = 0 if preview else self._hash_adds(sync, run, changed)
        self._renew()
        if full and not preview:  # the whole list: unchanged members keep the hashes sent before
            wh.execute(f"INSERT INTO {t('plan_adds')} (run_id, member_key, fingerprint, id_type, hashed) "
                       f"SELECT {rid}, x.member_key, x.fingerprint, x.id_type, x.hashed FROM {t('sent')} x "
                       f"JOIN {t('stage')} s ON s.member_key = x.member_key AND s.fingerprint = x.fingerprint "
                       f"JOIN {t('members')} m ON m.member_key = x.member_key AND m.fingerprint = x.fingerprint "
                       f"AND {self._mine(run, 'm')} "
                       f"WHERE {current} AND {self._mine(run, 'x')}")
        self._plan_removes(run, sync.mode, rid)
        new = int(wh.query(f"SELECT COUNT(*) FROM ({changed}) AS c")[0][0]) - invalid
        return self._decide(sync, run, full=full, funnel=funnel, invalid=invalid, new=new, previous=previous,
                            preview=preview)

    def _funnel(self, rid: str) -> dict[str, int]:
        from consent_filter.funnel import Funnel

        rows = self.wh.query(f"SELECT {STAGE}, {HELD_OUT}, COUNT(*) FROM {snap.table('stage')} "
                             f"WHERE run_id = {rid} AND in_definition GROUP BY {STAGE}, {HELD_OUT}")
        return Funnel.from_rows((int(s), bool(h), int(n)) for s, h, n in rows).as_dict()

    def _hash_adds(self, sync: Sync, run: RunRecord, changed_sql: str) -> int:
        """Hash the identifiers of new/changed members (only those) into plan_adds."""
        from exporters.hashing import hash_rows

        catalog, dest = self.project.catalog, sync.destination
        assert catalog is not None
        kinds = list(dest.identifiers)
        p = PROFILE_ALIAS
        key_text = exp.cast(col(catalog.profile_key, p), exp.DataType.Type.VARCHAR)
        country = col(catalog.country_column, p) if catalog.country_column else exp.Null()
        ids = [col(catalog.identifiers[k], p) if k in catalog.identifiers else exp.Null() for k in kinds]
        raw = (exp.select(exp.alias_(key_text, "member_key"), exp.alias_(country, COUNTRY),
                          *[exp.alias_(c, identifier_alias(k)) for c, k in zip(ids, kinds, strict=True)],
                          exp.alias_(snap.profile_fingerprint(catalog, dest.format, dest.identifiers), "fingerprint"))
               .from_(table_ref(catalog.profile, p)))
        raw_sql = raw.sql(dialect=self.wh.dialect)
        sql = (f"SELECT r.* FROM ({raw_sql}) AS r JOIN ({changed_sql}) AS c "
               f"ON c.member_key = r.member_key AND c.fingerprint = r.fingerprint ORDER BY r.member_key")
        invalid = 0

        def rows() -> Iterator[tuple[str, str, str, str, str]]:
            nonlocal invalid
            rid = run.run_id
            for batch in self.wh.stream(sql, HASH_BATCH):
                inputs = [(*r[2:2 + len(kinds)], r[1]) for r in batch]
                for r, hashed in zip(batch, hash_rows(dest.format, kinds, inputs), strict=True):
                    values = [(k, h) for k, h in zip(kinds, hashed, strict=True) if h is not None]
                    if not values:
                        invalid += 1
                    for kind, value in values:
                        yield (rid, r[0], r[-1], kind, value)

        self.wh.bulk_insert(snap.table("plan_adds"), ["run_id", "member_key", "fingerprint", "id_type", "hashed"], rows())
        return invalid

    def _plan_removes(self, run: RunRecord, mode: str, rid: str) -> None:
        """Every sent tuple that should leave, with why; forced reasons go out in every mode."""
        reason = (f"CASE WHEN s.member_key IS NULL THEN 'deleted' "
                  f"WHEN s.{STAGE} = {SUPPRESSED} THEN 'suppressed' WHEN s.{STAGE} = {UNDER_AGE} THEN 'under_age' "
                  f"WHEN s.{STAGE} = {NO_PERMISSION} THEN 'no_permission' "
                  f"WHEN NOT s.in_definition THEN 'left' WHEN s.{HELD_OUT} THEN 'held_out' "
                  f"WHEN s.{STAGE} <> {PASSES} THEN 'no_identifier' ELSE 'changed' END")
        forced = "(" + " OR ".join(f"reason = {snap.lit(r)}" for r in snap.FORCED_REASONS) + ")"
        keep_current = (f"NOT (s.member_key IS NOT NULL AND s.fingerprint = t.fingerprint AND s.in_definition "
                        f"AND s.{STAGE} = {PASSES} AND NOT s.{HELD_OUT})")
        self.wh.execute(
            f"INSERT INTO {snap.table('plan_removes')} (run_id, member_key, fingerprint, forced, reason, shared) "
            f"SELECT {rid}, member_key, fingerprint, {forced}, reason, FALSE FROM ("
            f"SELECT DISTINCT t.member_key, t.fingerprint, {reason} AS reason FROM {snap.table('sent')} t "
            f"LEFT JOIN {snap.table('stage')} s ON s.member_key = t.member_key AND s.run_id = {rid} "
            f"WHERE {self._mine(run, 't')} AND {keep_current}) AS x")
        if mode == "additive":  # additive keeps departures and old tuples, except forced ones
            self.wh.execute(f"DELETE FROM {snap.table('plan_removes')} WHERE run_id = {rid} AND NOT forced")

    def _decide(self, sync: Sync, run: RunRecord, *, full: bool, funnel: dict[str, int], invalid: int, new: int,
                previous: int, preview: bool) -> dict[str, Any]:
        """What this run sends: everything, only removals (held / too small), and in which mode."""
        wh, rid, dest, t = self.wh, snap.lit(run.run_id), sync.destination, snap.table
        count = lambda sql: int(wh.query(sql)[0][0])  # noqa: E731
        members = 0
        if full:  # a preview hashes nothing: the list is every current member
            members = funnel["exportable"] - invalid if preview else \
                count(f"SELECT COUNT(DISTINCT member_key) FROM {t('plan_adds')} WHERE run_id = {rid}")
        removes = count(f"SELECT COUNT(*) FROM {t('plan_removes')} WHERE run_id = {rid}")
        forced = count(f"SELECT COUNT(*) FROM {t('plan_removes')} WHERE run_id = {rid} AND forced")
        exportable = funnel["exportable"] - invalid
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
        if send_removes != "none" and not preview:
            self._mark_shared(run, dest.identifiers, send_adds=send_adds, only_forced=send_removes == "forced")
        removes_sent = 0 if send_removes == "none" else count(
            f"SELECT COUNT(*) FROM {t('plan_removes')} WHERE run_id = {rid} AND NOT shared"
            + (" AND forced" if send_removes == "forced" else ""))
        adds_sent = members if full else (new if send_adds else 0)
        error = None
        if too_small:
            error = (f"audience {run.audience} is too small for {dest.name}: fewer than {dest.min_size} profiles "
                     f"remain after consent and holdout (min_size); nothing was added"
                     + (f"; {removes_sent} removals were sent" if removes_sent else ""))
        elif held:
            error = (f"held: {new} adds and {removes - forced} removes exceed max_change "
                     f"({dest.max_change:.0%} of the {previous} members last exported); review and rerun with "
                     "--force" + (f"; {removes_sent} removals required by consent, suppression, age or deletion "
                                  "were sent" if removes_sent else ""))
        counts = {**{f"funnel_{k}": v for k, v in funnel.items()}, "adds": new, "removes": removes,
                  "forced_removes": forced, "previous_members": previous, "rows_to_send": adds_sent + removes_sent,
                  "adds_sent": adds_sent, "removes_sent": removes_sent}
        # Replace sends the whole list; a replace-mode run that may only remove sends a mirror delta.
        mode = "replace" if full else ("mirror" if sync.mode == "replace" else sync.mode)
        return {"full": full, "send_adds": send_adds, "send_removes": send_removes, "mode": mode,
                "outcome": outcome, "error": error, "counts": counts}

    def _mark_shared(self, run: RunRecord, kinds: Sequence[str], *, send_adds: bool, only_forced: bool) -> None:
        """Flag removals whose hashed tuple stays at the destination through another row.

        After this run the destination holds: every sent tuple not removed now, plus this run's
        adds. A removal whose signature equals one of those must not be sent (the receiver would
        drop the member who stays). Only rows sharing a hashed value with a removal are grouped,
        so this costs little however large the audience.
        """
        t, rid = snap.table, snap.lit(run.run_id)
        sel = f"r.run_id = {rid}" + (" AND r.forced" if only_forced else "")
        removed = (f"SELECT t.member_key, t.fingerprint, t.id_type, t.hashed FROM {t('sent')} t "
                   f"JOIN {t('plan_removes')} r ON r.member_key = t.member_key AND r.fingerprint = t.fingerprint "
                   f"AND {sel} WHERE {self._mine(run, 't')}")
        values = f"SELECT id_type, hashed FROM ({removed}) AS v"
        staying = (f"SELECT t.member_key, t.fingerprint, t.id_type, t.hashed FROM {t('sent')} t "
                   f"WHERE {self._mine(run, 't')} AND NOT EXISTS (SELECT 1 FROM {t('plan_removes')} r "
                   f"WHERE {sel} AND r.member_key = t.member_key AND r.fingerprint = t.fingerprint)")
        if send_adds:
            staying += (f" UNION ALL SELECT member_key, fingerprint, id_type, hashed FROM {t('plan_adds')} "
                        f"WHERE run_id = {rid}")
        near = (f"SELECT a.member_key, a.fingerprint FROM ({staying}) AS a "
                f"WHERE (a.id_type, a.hashed) IN ({values})")
        after = (f"SELECT {snap.signature(kinds, 'a')} AS sig FROM ({staying}) AS a "
                 f"WHERE (a.member_key, a.fingerprint) IN ({near}) GROUP BY a.member_key, a.fingerprint")
        gone = (f"SELECT g.member_key, g.fingerprint, {snap.signature(kinds, 'g')} AS sig FROM ({removed}) AS g "
                f"GROUP BY g.member_key, g.fingerprint")
        self.wh.execute(
            f"UPDATE {t('plan_removes')} SET shared = TRUE WHERE run_id = {rid}" + (" AND forced" if only_forced else "")
            + f" AND (member_key, fingerprint) IN (SELECT c.member_key, c.fingerprint FROM ({gone}) AS c "
            f"WHERE c.sig IN ({after}))")

    # ---- export ---------------------------------------------------------------------------------
    def _export(self, sync: Sync, run: RunRecord, decision: dict[str, Any]) -> dict[str, Any]:
        wh, rid, dest, t = self.wh, snap.lit(run.run_id), sync.destination, snap.table
        kinds = tuple(dest.identifiers)
        full, send_adds, send_removes = decision["full"], decision["send_adds"], decision["send_removes"]
        if not full and not send_adds and not decision["counts"]["removes_sent"]:
            return {"skipped": True}

        def adds() -> Iterator[Sequence[str | None]]:
            if not (send_adds or full):
                return
            # plan_adds holds the new/changed tuples, plus every current member on a full run
            for row in snap.iter_rows(wh, snap.pivot(t("plan_adds"), f"run_id = {rid}", kinds)):
                yield row[2:]

        def removes() -> Iterator[Sequence[str | None]]:
            if send_removes == "none":
                return
            only_forced = " AND r.forced" if send_removes == "forced" else ""
            source = (f"(SELECT x.* FROM {t('sent')} x JOIN {t('plan_removes')} r "
                      f"ON r.member_key = x.member_key AND r.fingerprint = x.fingerprint AND r.run_id = {rid} "
                      f"AND NOT r.shared{only_forced} WHERE {self._mine(run, 'x')}) AS rs")
            for row in snap.iter_rows(wh, snap.pivot(source, "1 = 1", kinds)):
                yield row[2:]

        manifest = {
            "audience": run.audience, "run_id": run.run_id, "destination": dest.name, "format": dest.format,
            "mode": decision["mode"], "as_of": run.as_of.isoformat(),
            "definition": {"file": run.definition_file, "git_commit": run.git_commit, "content_hash": run.content_hash},
            "consent_funnel": {k[len("funnel_"):]: v for k, v in decision["counts"].items() if k.startswith("funnel_")},
            "description": sync.audience.description, "owner": sync.audience.owner,
        }
        plan = ExportPlan(run.run_id, run.audience, decision["mode"], full, kinds, adds, removes, manifest)
        return sink_for(dest, self.project.config).send(plan, _Checkpoints(self, run))

    # ---- snapshot ---------------------------------------------------------------------------------
    def _apply_snapshot(self, run: RunRecord, decision: dict[str, Any]) -> None:
        """Record what the destination now holds; idempotent, in one warehouse transaction."""
        rid, t = snap.lit(run.run_id), snap.table
        mine = self._mine(run)
        project, audience, destination = (snap.lit(v) for v in (self.project.config.name, run.audience,
                                                                 run.destination))
        statements: list[str] = []
        # shared removals too: that member no longer holds the tuple (another one does)
        removed = f"SELECT member_key, fingerprint FROM {t('plan_removes')} WHERE run_id = {rid}"
        if decision["send_removes"] == "forced":
            removed += " AND forced"
        if decision["full"]:  # the destination now holds exactly the list: drop every other tuple
            removed = (f"SELECT member_key, fingerprint FROM {t('sent')} WHERE {mine} EXCEPT "
                       f"SELECT member_key, fingerprint FROM {t('plan_adds')} WHERE run_id = {rid}")
        if decision["send_removes"] != "none" or decision["full"]:
            statements += [
                f"DELETE FROM {t('sent')} WHERE {mine} AND (member_key, fingerprint) IN ({removed})",
                f"DELETE FROM {t('members')} WHERE {mine} AND (member_key, fingerprint) IN ({removed})",
            ]
        if decision["send_adds"] or decision["full"]:
            added = f"SELECT DISTINCT member_key, fingerprint FROM {t('plan_adds')} WHERE run_id = {rid}"
            statements += [
                f"DELETE FROM {t('sent')} WHERE {mine} AND (member_key, fingerprint) IN ({added})",
                f"INSERT INTO {t('sent')} (project, audience, destination, member_key, fingerprint, id_type, hashed) "
                f"SELECT {project}, {audience}, {destination}, member_key, fingerprint, id_type, hashed "
                f"FROM {t('plan_adds')} WHERE run_id = {rid}",
                f"DELETE FROM {t('members')} WHERE {mine} AND member_key IN (SELECT member_key FROM ({added}) AS a)",
                f"INSERT INTO {t('members')} (project, audience, destination, member_key, fingerprint) "
                f"SELECT {project}, {audience}, {destination}, member_key, fingerprint FROM ({added}) AS a",
            ]
        if statements:
            self.wh.transaction(statements)


def _tbl(name: str):  # noqa: ANN202
    from dsl.catalog import Table

    return Table(snap.table(name), {})


def _rename_alias(old: str, new: str) -> Callable[[exp.Expression], exp.Expression]:
    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table == old:
            node.set("table", exp.to_identifier(new))
        return node

    return rename


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

