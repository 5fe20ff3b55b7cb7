"""The ingest protocol end to end: real sandbox receiver on loopback, real client.

Identifier values are opaque to the receiver; the tests use hand-written 64-character
stand-ins for SHA-256 hex hashes (``"a" * 64``), so expected memberships are written out.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exporters.grpc_ingest.client import IngestClient, IngestError, scrub_details
from exporters.grpc_ingest.faults import FaultInjector, FaultPlan
from exporters.grpc_ingest.model import Mode, UploadState
from exporters.grpc_ingest.sandbox import Sandbox
from exporters.grpc_ingest.sandbox_store import SandboxStore
from proto_gen import generate
from tests.exporters.grpc_helpers import (
    REPO_ROOT,
    FakeSleep,
    running_sandbox,
    sandbox_process,
    self_signed_cert,
    target_of,
)

A, B, C, D, E, F = ("a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64, "f" * 64)
P1, P2 = ("1" * 64, "2" * 64)
TOKEN = "s3cret-token"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox.db", token=TOKEN) as sb:
        yield sb


def make_client(port: int, **kwargs: object) -> IngestClient:
    options: dict[str, object] = {"token": TOKEN, "tls": False, "sleep": FakeSleep()}
    options.update(kwargs)
    return IngestClient(target_of(port), **options)  # type: ignore[arg-type]  # each test passes the right types


def upload_run(
    client: IngestClient,
    run_id: str,
    mode: Mode,
    batches: list[tuple[list[list[str]], list[list[str]]]],
    *,
    segment: str = "high_value",
    columns: tuple[str, ...] = ("email",),
) -> str:
    upload = client.open_upload(segment, run_id, mode=mode, format="sha256", columns=columns)
    for seq, (adds, removes) in enumerate(batches, start=1):
        client.send_batch(upload.name, seq, adds, removes)
    client.commit(upload.name, last_seq=len(batches))
    return upload.name


# ---- normal operation -----------------------------------------------------------------------


def test_upload_is_invisible_until_commit_then_membership_is_exact(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload = client.open_upload(
        "high_value", "run-1", mode=Mode.MIRROR, format="sha256", columns=["email", "phone"]
    )
    assert upload.name.startswith("segments/high_value/uploads/")
    assert upload.state is UploadState.OPEN

    client.send_batch(upload.name, 1, [[A, P1], [B, ""]], [])
    client.send_batch(upload.name, 2, [["", P2]], [])
    assert client.list_members("high_value") == []

    committed = client.commit(upload.name, last_seq=2)

    assert committed.state is UploadState.COMMITTED
    assert committed.received_sequence_numbers == (1, 2)
    assert committed.highest_contiguous_sequence_number == 2
    assert (committed.staged_add_count, committed.staged_remove_count) == (3, 0)
    assert committed.member_count == 3
    assert committed.commit_time is not None
    assert sorted(client.list_members("high_value"), key=sorted_items) == [
        {"email": A, "phone": P1},
        {"email": B},
        {"phone": P2},
    ]
    assert sandbox.store.application_counts() == {(upload.name, 1): 1, (upload.name, 2): 1}


def sorted_items(member: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(member.items())


def test_mirror_applies_the_delta_and_a_removal_wins_over_an_add(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload_run(client, "run-1", Mode.MIRROR, [([[A], [B], [C]], [])])

    # E is added in batch 1 and removed in batch 2 of the same upload: it must end up absent.
    upload_run(client, "run-2", Mode.MIRROR, [([[D], [E]], [[B]]), ([], [[E]])])

    assert client.list_members("high_value") == [{"email": A}, {"email": C}, {"email": D}]


def test_additive_applies_adds_and_the_removals_it_is_sent(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload_run(client, "run-1", Mode.ADDITIVE, [([[A], [B]], [])])
    upload_run(client, "run-2", Mode.ADDITIVE, [([[C]], [[A]])])

    assert client.list_members("high_value") == [{"email": B}, {"email": C}]


def test_replace_makes_the_membership_exactly_the_uploads_adds(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload_run(client, "run-1", Mode.MIRROR, [([[A], [B], [C]], [])])

    name = upload_run(client, "run-2", Mode.REPLACE, [([[C]], []), ([[D]], [])])

    assert client.list_members("high_value") == [{"email": C}, {"email": D}]
    assert client.get_upload(name).member_count == 2


def test_a_removal_matches_the_member_whatever_the_column_order(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload_run(client, "run-1", Mode.MIRROR, [([[A, P1], [B, P2]], [])],
               columns=("email", "phone"))
    upload_run(client, "run-2", Mode.MIRROR, [([], [[P1, A]])], columns=("phone", "email"))

    assert client.list_members("high_value") == [{"email": B, "phone": P2}]


def test_segments_are_independent_and_listing_pages_through_all(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload_run(client, "run-1", Mode.MIRROR, [([[A], [B], [C], [D], [E]], [])], segment="one")
    upload_run(client, "run-1", Mode.MIRROR, [([[F]], [])], segment="two")

    assert client.list_members("one", page_size=2) == [
        {"email": A}, {"email": B}, {"email": C}, {"email": D}, {"email": E},
    ]
    assert client.list_members("segments/two") == [{"email": F}]


def test_committing_twice_is_harmless(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    name = upload_run(client, "run-1", Mode.MIRROR, [([[A], [B]], [])])

    again = client.commit(name)

    assert again.state is UploadState.COMMITTED
    assert again.member_count == 2
    assert client.list_members("high_value") == [{"email": A}, {"email": B}]


def test_commit_refuses_when_a_batch_is_missing_and_changes_nothing(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                                columns=["email"])
    client.send_batch(upload.name, 1, [[A]])
    client.send_batch(upload.name, 3, [[C]])

    with pytest.raises(IngestError) as failure:
        client.commit(upload.name, last_seq=3)

    assert failure.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "sequence numbers 2 missing" in str(failure.value)
    assert client.get_upload(upload.name).state is UploadState.OPEN
    assert client.get_upload(upload.name).highest_contiguous_sequence_number == 1
    assert client.list_members("high_value") == []


def test_a_batch_after_commit_is_refused_but_a_resent_one_is_acknowledged(
    sandbox: Sandbox,
) -> None:
    client = make_client(sandbox.port)
    name = upload_run(client, "run-1", Mode.MIRROR, [([[A]], [])])

    assert client.send_batch(name, 1, [[A]]).previously_received is True
    with pytest.raises(IngestError) as failure:
        client.send_batch(name, 2, [[B]])

    assert failure.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert client.list_members("high_value") == [{"email": A}]


def test_a_resent_sequence_number_with_other_rows_is_refused(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                                columns=["email"])
    client.send_batch(upload.name, 1, [[A]])

    with pytest.raises(IngestError) as failure:
        client.send_batch(upload.name, 1, [[B]])

    assert failure.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "already received with different content" in str(failure.value)
    assert B not in str(failure.value)


def test_reopening_a_run_with_other_parameters_is_refused(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                       columns=["email"])

    with pytest.raises(IngestError) as failure:
        client.open_upload("high_value", "run-1", mode=Mode.REPLACE, format="sha256",
                           columns=["email"])

    assert failure.value.code is grpc.StatusCode.FAILED_PRECONDITION


def test_invalid_rows_are_refused_without_echoing_values(sandbox: Sandbox) -> None:
    client = make_client(sandbox.port)
    upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                                columns=["email", "phone"])

    with pytest.raises(IngestError) as wrong_width:
        client.send_batch(upload.name, 1, [[A, P1], [B]])
    with pytest.raises(IngestError) as empty_row:
        client.send_batch(upload.name, 1, [], [["", ""]])

    assert str(wrong_width.value) == (
        f"SendBatch refused by destination {target_of(sandbox.port)} (INVALID_ARGUMENT): "
        "adds row 2 has 1 values, the upload has 2 columns"
    )
    assert "removes row 1 has no identifier" in str(empty_row.value)
    assert sandbox.store.application_counts() == {}


def test_server_messages_are_scrubbed_of_identifier_values() -> None:
    maid = "6f1c2a4e-9b3d-4c7e-8a5f-0d2b1e3c4f5a"
    message = f"rejected  row\n{A} / {maid} / {'Zm9v' * 10}abc= / custom-value-123"

    assert scrub_details(message, {"custom-value-123"}) == (
        "rejected row <redacted> / <redacted> / <redacted> / <redacted>"
    )


# ---- faults ---------------------------------------------------------------------------------


def test_a_batch_resent_after_a_lost_acknowledgement_is_applied_once(tmp_path: Path) -> None:
    faults = FaultPlan(drop_ack=0.5, seed=7)
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        client = make_client(sb.port)
        upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                                    columns=["email"])
        acks = [client.send_batch(upload.name, seq, [[v]]) for seq, v in
                enumerate([A, B, C, D, E, F], start=1)]
        client.commit(upload.name, last_seq=6)

        # Every lost acknowledgement was followed by a resend the receiver recognised.
        assert any(ack.previously_received for ack in acks)
        counts = sb.store.application_counts()
        assert sorted(counts.values()) == [1, 1, 1, 1, 1, 1]
        assert client.list_members("high_value") == [
            {"email": A}, {"email": B}, {"email": C}, {"email": D}, {"email": E}, {"email": F},
        ]


def test_unavailable_and_slow_answers_still_end_with_the_exact_membership(
    tmp_path: Path,
) -> None:
    faults = FaultPlan(unavailable=0.3, slow=0.2, slow_s=0.01, drop_ack=0.1, seed=11)
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        sleep = FakeSleep()
        client = make_client(sb.port, sleep=sleep)
        first = [[f"{n:064x}"] for n in range(1, 41)]  # members 1..40
        upload_run(client, "run-1", Mode.MIRROR, [(first[i : i + 5], []) for i in range(0, 40, 5)])
        # run 2: members 1..10 leave, 41..45 join
        upload_run(client, "run-2", Mode.MIRROR,
                   [([[f"{n:064x}"] for n in range(41, 46)], first[:10])])

        assert sleep.calls, "the fault plan should have forced retries"
        assert all(n == 1 for n in sb.store.application_counts().values())
        assert len(sb.store.application_counts()) == 9
        assert client.list_members("high_value") == [{"email": f"{n:064x}"} for n in range(11, 46)]


def test_deadline_exceeded_while_the_receiver_still_applies_is_harmless(tmp_path: Path) -> None:
    # The receiver sleeps past the client's deadline before handling a SendBatch; the client
    # resends meanwhile, and the late first delivery arrives after that (even after commit).
    faults = FaultPlan(slow=0.5, slow_s=1.0, seed=3, methods=frozenset({"SendBatch"}))
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        sleep = FakeSleep()
        client = make_client(sb.port, sleep=sleep, deadline_s=0.3)
        name = upload_run(client, "run-1", Mode.MIRROR, [([[A]], []), ([[B]], []), ([[C]], [])])

        assert sleep.calls, "some SendBatch should have exceeded its deadline"
        assert client.get_upload(name).received_sequence_numbers == (1, 2, 3)
        sb.stop(grace_s=30)  # returns once every late delivery has been handled

    with SandboxStore(tmp_path / "s.db") as store:
        assert sorted(store.application_counts().values()) == [1, 1, 1]
        assert store.members("high_value") == [{"email": A}, {"email": B}, {"email": C}]


def test_resource_exhausted_waits_at_least_the_servers_retry_delay(tmp_path: Path) -> None:
    faults = FaultPlan(exhausted=0.5, exhausted_delay_s=1.5, seed=5)
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        sleep = FakeSleep()
        client = make_client(sb.port, sleep=sleep, backoff_initial_s=0.01, backoff_max_s=0.1)
        upload_run(client, "run-1", Mode.MIRROR, [([[A]], []), ([[B]], [])])

        assert sleep.calls, "the fault plan should have exhausted some calls"
        assert all(wait >= 1.5 for wait in sleep.calls)
        assert client.list_members("high_value") == [{"email": A}, {"email": B}]


def test_retries_stop_after_max_attempts_with_a_clear_error(tmp_path: Path) -> None:
    faults = FaultPlan(exhausted=1.0, exhausted_delay_s=0.25, methods=frozenset({"GetUpload"}))
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        sleep = FakeSleep()
        client = make_client(sb.port, sleep=sleep, max_attempts=3, backoff_max_s=0.1)
        upload = client.open_upload("seg", "run-1", mode=Mode.MIRROR, format="sha256",
                                    columns=["email"])
        with pytest.raises(IngestError) as failure:
            client.get_upload(upload.name)

    assert failure.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failure.value.attempts == 3
    assert failure.value.transient is True
    assert sleep.calls == [0.25, 0.25]
    assert str(failure.value).startswith(
        f"GetUpload to {target_of(sb.port)} failed after 3 attempts (RESOURCE_EXHAUSTED)"
    )


def test_transient_failures_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    # Every GetUpload answers UNAVAILABLE (no server delay): the client waits between its 8
    # attempts with full jitter, uniform in [0, min(2.0, 0.05 * 2**i)] before attempt i + 2.
    faults = FaultPlan(unavailable=1.0, methods=frozenset({"GetUpload"}))
    with running_sandbox(tmp_path / "s.db", token=TOKEN, faults=faults) as sb:
        sleep = FakeSleep()
        client = make_client(sb.port, sleep=sleep, max_attempts=8, backoff_initial_s=0.05, backoff_max_s=2.0)
        upload = client.open_upload("seg", "run-1", mode=Mode.MIRROR, format="sha256", columns=["email"])
        random.seed(20261123)  # tenacity draws the jitter from `random`: the same waits every run
        with pytest.raises(IngestError) as failure:
            client.get_upload(upload.name)

    caps = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert failure.value.attempts == 8 and len(sleep.calls) == 7
    assert all(0 <= wait <= cap for wait, cap in zip(sleep.calls, caps, strict=True))
    assert len(set(sleep.calls)) == 7  # jitter: no two waits alike...
    assert sum(wait < 0.9 * cap for wait, cap in zip(sleep.calls, caps, strict=True)) >= 3  # ...nor at their caps
    assert max(sleep.calls[4:]) > caps[2]  # later waits reach past what early attempts may wait


def test_refusals_are_not_retried(sandbox: Sandbox) -> None:
    sleep = FakeSleep()
    client = make_client(sandbox.port, sleep=sleep)
    upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256", columns=["email"])
    refusals = []
    for call in (
        lambda: client.send_batch(upload.name, 1, [[A, B]]),  # INVALID_ARGUMENT: two values, one column
        lambda: client.commit(upload.name, last_seq=2),  # FAILED_PRECONDITION: batches missing
    ):
        with pytest.raises(IngestError) as failure:
            call()
        refusals.append((failure.value.code, failure.value.attempts, failure.value.transient))

    assert refusals == [
        (grpc.StatusCode.INVALID_ARGUMENT, 1, False),
        (grpc.StatusCode.FAILED_PRECONDITION, 1, False),
    ]
    assert sleep.calls == []


def test_fault_options_parse_like_the_command_line() -> None:
    plan = FaultPlan.from_options(unavailable=0.3, slow="0.2:0.5", exhausted="0.1:0.2",
                                  drop_ack=0.1, seed=7, methods="SendBatch, CommitUpload")

    assert plan == FaultPlan(unavailable=0.3, slow=0.2, slow_s=0.5, exhausted=0.1,
                             exhausted_delay_s=0.2, drop_ack=0.1, seed=7,
                             methods=frozenset({"SendBatch", "CommitUpload"}))
    with pytest.raises(ValueError, match=r"--fault-slow expects P:SECONDS"):
        FaultPlan.from_options(slow="0.5")
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan.from_options(unavailable=1.5)


def test_the_same_seed_gives_the_same_faults() -> None:
    plan = FaultPlan(unavailable=0.3, slow=0.2, slow_s=0.1, drop_ack=0.3, seed=42)
    first, second = FaultInjector(plan), FaultInjector(plan)

    assert [first.decide("SendBatch") for _ in range(50)] == [
        second.decide("SendBatch") for _ in range(50)
    ]


# ---- authentication and TLS -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("wrong-token", "rejected the token (UNAUTHENTICATED)"),
        (None, "requires a bearer token, none was given (UNAUTHENTICATED)"),
    ],
)
def test_a_wrong_or_missing_token_is_refused_and_nothing_is_committed(
    sandbox: Sandbox, token: str | None, expected: str
) -> None:
    good = make_client(sandbox.port)
    upload = good.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                              columns=["email"])
    bad = make_client(sandbox.port, token=token)

    with pytest.raises(IngestError) as sending:
        bad.send_batch(upload.name, 1, [[A]])
    with pytest.raises(IngestError) as committing:
        bad.commit(upload.name)

    for failure in (sending, committing):
        assert failure.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert failure.value.attempts == 1
        assert str(failure.value) == f"destination {target_of(sandbox.port)} {expected}"
    assert good.get_upload(upload.name).state is UploadState.OPEN
    assert good.get_upload(upload.name).received_sequence_numbers == ()
    assert good.list_members("high_value") == []


def test_health_checks_answer_without_a_token(sandbox: Sandbox) -> None:
    with grpc.insecure_channel(target_of(sandbox.port)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service="ingest.v1.IngestService"),
                           timeout=10)

    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    files, pem = self_signed_cert(tmp_path / "tls")
    with running_sandbox(tmp_path / "s.db", token=TOKEN, tls=files) as sb:
        client = make_client(sb.port, tls=True, root_cert=pem)
        upload_run(client, "run-1", Mode.REPLACE, [([[A], [B]], [])])

        assert client.list_members("high_value") == [{"email": A}, {"email": B}]


def test_plaintext_to_a_tls_server_fails_clearly(tmp_path: Path) -> None:
    files, _pem = self_signed_cert(tmp_path / "tls")
    with running_sandbox(tmp_path / "s.db", token=TOKEN, tls=files) as sb:
        client = make_client(sb.port, tls=False, max_attempts=2)
        with pytest.raises(IngestError) as failure:
            client.list_members("high_value")

    assert failure.value.code is grpc.StatusCode.UNAVAILABLE
    assert "failed after 2 attempts (UNAVAILABLE)" in str(failure.value)
    assert "check that the destination's tls setting matches the server" in str(failure.value)


# ---- crashes --------------------------------------------------------------------------------


def test_a_store_failure_in_the_middle_of_a_batch_leaves_nothing_applied(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(sandbox.port)
    upload = client.open_upload("high_value", "run-1", mode=Mode.MIRROR, format="sha256",
                                columns=["email"])

    def crash(*_args: object) -> None:  # rows are staged by now; the batch is not recorded
        raise OSError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(SandboxStore, "_record_application", crash)
        with pytest.raises(IngestError) as failure:
            client.send_batch(upload.name, 1, [[A], [B]], [[C]])

    assert failure.value.code is grpc.StatusCode.INTERNAL
    state = client.get_upload(upload.name)
    assert state.received_sequence_numbers == ()
    assert (state.staged_add_count, state.staged_remove_count) == (0, 0)
    assert staged_row_count(sandbox.store) == 0

    assert client.send_batch(upload.name, 1, [[A], [B]], [[C]]).previously_received is False
    client.commit(upload.name, last_seq=1)
    assert client.list_members("high_value") == [{"email": A}, {"email": B}]
    assert sandbox.store.application_counts() == {(upload.name, 1): 1}


def staged_row_count(store: SandboxStore) -> int:
    with store._transaction(write=False) as conn:
        return int(conn.execute("SELECT count(*) FROM staged").fetchone()[0])


def test_a_run_resumed_after_the_receiver_was_killed_ends_exact(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    batches = [[[A]], [[B]], [[C]], [[D]], [[E]]]
    with sandbox_process(db, token=TOKEN) as first:
        client = make_client(first.port)
        upload = client.open_upload("high_value", "run-7", mode=Mode.MIRROR, format="sha256",
                                    columns=["email"])
        for seq in (1, 2, 3):
            client.send_batch(upload.name, seq, batches[seq - 1])
        client.close()
        first.kill9()

    with sandbox_process(db, token=TOKEN) as second:
        client = make_client(second.port)
        reopened = client.open_upload("high_value", "run-7", mode=Mode.MIRROR,
                                      format="sha256", columns=["email"])
        assert reopened.name == upload.name
        assert reopened.received_sequence_numbers == (1, 2, 3)
        assert reopened.highest_contiguous_sequence_number == 3

        acks = [client.send_batch(upload.name, seq, rows) for seq, rows in
                enumerate(batches, start=1)]
        client.commit(upload.name, last_seq=5)

        assert [ack.previously_received for ack in acks] == [True, True, True, False, False]
        assert client.list_members("high_value") == [
            {"email": A}, {"email": B}, {"email": C}, {"email": D}, {"email": E},
        ]
    with SandboxStore(db) as store:
        assert sorted(store.application_counts().values()) == [1, 1, 1, 1, 1]


def test_the_sandbox_process_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    with sandbox_process(tmp_path / "s.db", token=TOKEN) as proc:
        client = make_client(proc.port)
        upload_run(client, "run-1", Mode.MIRROR, [([[A]], [])])
        client.close()
        proc.process.terminate()

        assert proc.process.wait(timeout=60) == 0
    with SandboxStore(tmp_path / "s.db") as store:
        assert store.members("high_value") == [{"email": A}]


# ---- code generation ------------------------------------------------------------------------

_AUDIENCE_PROTO = """\
syntax = "proto3";
package audience.v1;
import "ingest/v1/ingest.proto";
import "google/rpc/status.proto";
message Probe {
  ingest.v1.Row row = 1;
  google.rpc.Status status = 2;
}
service ProbeService {
  rpc GetProbe(Probe) returns (Probe);
}
"""


def make_proto_tree(root: Path) -> Path:
    src = root / "proto"
    (src / "ingest" / "v1").mkdir(parents=True)
    (src / "audience" / "v1").mkdir(parents=True)
    ingest = (REPO_ROOT / "proto" / "ingest" / "v1" / "ingest.proto").read_text()
    (src / "ingest" / "v1" / "ingest.proto").write_text(ingest)
    (src / "audience" / "v1" / "probe.proto").write_text(_AUDIENCE_PROTO)
    (root / "genpkg").mkdir()
    (root / "genpkg" / "__init__.py").write_text("")
    return src


def test_generation_rewrites_imports_of_our_own_protos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_proto_tree(tmp_path)
    out = tmp_path / "genpkg"

    assert generate(src, out, package="genpkg") is True
    assert generate(src, out, package="genpkg") is False  # current: a no-op

    grpc_module = (out / "audience" / "v1" / "probe_pb2_grpc.py").read_text()
    message_module = (out / "audience" / "v1" / "probe_pb2.py").read_text()
    assert "from genpkg.audience.v1 import probe_pb2 as" in grpc_module
    assert "from genpkg.ingest.v1 import ingest_pb2 as" in message_module
    assert "from google.rpc import status_pb2 as" in message_module
    # `audience` is also our own Python package: the module must import from genpkg.
    monkeypatch.syspath_prepend(str(tmp_path))
    from genpkg.audience.v1 import probe_pb2  # type: ignore[import-not-found]  # generated by this test

    probe = probe_pb2.Probe()
    probe.row.values.append(A)
    assert probe_pb2.Probe.FromString(probe.SerializeToString()).row.values == [A]


def test_generation_reruns_on_change_and_drops_modules_of_removed_protos(
    tmp_path: Path,
) -> None:
    src = make_proto_tree(tmp_path)
    out = tmp_path / "genpkg"
    generate(src, out, package="genpkg")

    (src / "audience" / "v1" / "probe.proto").unlink()

    assert generate(src, out, package="genpkg") is True
    assert not (out / "audience" / "v1" / "probe_pb2.py").exists()
    assert (out / "ingest" / "v1" / "ingest_pb2.py").exists()


def test_concurrent_generation_in_several_processes_succeeds(tmp_path: Path) -> None:
    src = make_proto_tree(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(REPO_ROOT)!r}, {str(tmp_path)!r}]
        from pathlib import Path
        from proto_gen import generate
        generate(Path({str(src)!r}), Path({str(tmp_path / "genpkg")!r}), package="genpkg")
        from genpkg.audience.v1 import probe_pb2, probe_pb2_grpc
        print(probe_pb2.Probe.DESCRIPTOR.full_name)
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=120)[0].strip() for w in workers]

    assert [w.returncode for w in workers] == [0, 0, 0]
    assert outputs == ["audience.v1.Probe"] * 3


def test_python_m_proto_gen_reports_the_repository_modules_up_to_date() -> None:
    # Importing the client (above) already ran ensure_generated(); running it again is a no-op.
    done = subprocess.run([sys.executable, "-m", "proto_gen"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)

    assert done.returncode == 0
    assert done.stdout.strip() == f"proto_gen: up to date in {REPO_ROOT / 'proto_gen'}"
