"""The gRPC sink as a run uses it: a wrong token fails the run clearly with nothing committed, and
only hashed values of the columns' shapes can leave (the same block guard as file parts)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from audience.config import load_config
from audience.errors import OperationalError
from audience.runs.sinks import ExportPlan, GrpcSink
from tests.exporters.grpc_helpers import running_sandbox
from tests.runs.helpers import CONSENT_CONFIG, as_of, fan, grant, grpc_destination, iso, run_cli, sandbox_members
from tests.warehouse_fixture import ROWS, project_on

AUDIENCE = "audience fans {\n  where: score >= 5\n  sync dsp { mode: mirror }\n}\n"
ROWS_OF_TWO = {**ROWS, "fans": [fan(1, "one@example.com"), fan(2, "two@example.com")],
               "consents": [grant(1), grant(2)], "suppressions": []}


def test_a_wrong_token_fails_the_run_clearly_and_commits_nothing(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox.db", token="the-right-token") as sandbox:
        config = CONSENT_CONFIG + grpc_destination("dsp", sandbox.port, token_env="DSP_TOKEN")
        with project_on("duckdb", tmp_path, AUDIENCE, config, ROWS_OF_TWO) as project:
            out = run_cli(project, "refresh", "fans", "--as-of", iso(as_of(0)), "--json",
                          env={"DSP_TOKEN": "a-wrong-token"})

        assert out.returncode == 2
        assert "Traceback" not in out.stderr and "a-wrong-token" not in out.stderr
        (run,) = json.loads(out.stdout)["runs"]
        assert run["state"] == "failed"
        assert out.stderr.splitlines()[-1] == (  # the log lines before it say the same
            f"error: fans -> dsp: destination dsp: destination 127.0.0.1:{sandbox.port} rejected the token "
            "(UNAUTHENTICATED)"
        )
        assert sandbox.store.application_counts() == {}
        assert sandbox_members(sandbox.store, "fans", ["email"]) == set()


class Rows:
    """A plan list read as rows (the gRPC sink reads nothing else)."""

    def __init__(self, rows: Sequence[Sequence[str | None]]) -> None:
        self._rows = rows

    def rows(self) -> Iterator[Sequence[str | None]]:
        return iter(self._rows)

    def blocks(self) -> Any:
        raise AssertionError("the gRPC sink reads rows")


class NoCheckpoints:
    def done(self) -> dict[str, dict[str, Any]]:
        return {}

    def mark(self, step: str, info: dict[str, Any]) -> None:
        pass

    def progress(self, done: int) -> None:
        pass


HASH = "a" * 64


@pytest.mark.parametrize(
    ("adds", "removes", "message", "received"),
    [
        ([(HASH,), ("alice@example.com",)], [], "adds batch 1: row 2 column email: value is not a hashed identifier",
         []),
        ([(HASH,)], [("+447911123456",)], "removes batch 2: row 1 column email: value is not a hashed identifier",
         [1]),  # the adds batch before it was received, never committed
        ([(HASH,), (None,)], [], "adds batch 1: row 2 has no identifier", []),
    ],
)
def test_the_grpc_sink_refuses_anything_but_hashed_values_and_commits_nothing(
    tmp_path: Path, adds: list[tuple[str | None]], removes: list[tuple[str | None]], message: str,
    received: list[int],
) -> None:
    with running_sandbox(tmp_path / "sandbox.db") as sandbox:
        (tmp_path / "audience.toml").write_text(
            '[project]\nname = "p"\n[warehouse]\nurl = "duckdb:///wh.duckdb"\n[profiles]\ntable = "fans"\n'
            'key = "fan_id"\n[profiles.identifiers]\nemail = "email"\n' + CONSENT_CONFIG
            + grpc_destination("dsp", sandbox.port), encoding="utf-8")
        config = load_config(tmp_path)
        plan = ExportPlan("run-1", "fans", "mirror", False, ("email",), Rows(adds), Rows(removes))

        with pytest.raises(OperationalError) as refused:
            GrpcSink(config.destinations["dsp"], config).send(plan, NoCheckpoints())

        assert str(refused.value) == f"destination dsp: {message}"
        assert [seq for _, seq in sandbox.store.application_counts()] == received
        assert sandbox_members(sandbox.store, "fans", ["email"]) == set()
