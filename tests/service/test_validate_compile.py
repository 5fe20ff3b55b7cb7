"""ValidateAudience and CompileAudience: drafts checked against the project, SQL per dialect.

Compiled SQL is checked by running it: on the DuckDB warehouse the server uses and, for the
postgres dialect, on the same rows loaded into PostgreSQL; members are listed by hand in
helpers.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import grpc
import psycopg
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from audience.service.protos import audience_service_pb2 as rpc
from tests.consent.test_consent_rules import EXPORTED_ADS, ROWS_CONSENT
from tests.service.helpers import GB_FANS, US_FANS, Running, error_details, field_violations, serving
from tests.warehouse_fixture import AS_OF, PG_DSN, drop_postgres, load_postgres


def as_of_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(AS_OF.replace(tzinfo=UTC))
    return ts


def members(root: Path, sql: str) -> list[int]:
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        return sorted(int(r[0]) for r in con.execute(sql).fetchall())
    finally:
        con.close()


def invalid(call: Callable[[Any], Any], request: Message) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


# ---- ValidateAudience -------------------------------------------------------------------------
def test_valid_draft_returns_its_audiences_and_no_diagnostics(server: Running) -> None:
    got = server.stub.ValidateAudience(rpc.ValidateAudienceRequest(
        definition='audience londoners { where: city = "London" }\n'
                   'audience young_londoners { where: in audience londoners and birth_date > "2000-01-01" }'))
    assert list(got.audiences) == ["audiences/londoners", "audiences/young_londoners"]
    assert list(got.diagnostics) == []


def test_invalid_draft_names_every_error_with_line_and_column(server: Running) -> None:
    draft = ('audience lapsed {\n'
             '  where: contry = "GB"\n'
             '     and did strem in last 30 days\n'
             '}')
    err = invalid(server.stub.ValidateAudience,
                  rpc.ValidateAudienceRequest(definition=draft, filename="lapsed.aud"))
    assert field_violations(err) == [
        ("definition:2:10", 'lapsed.aud:2:10: error[E201]: unknown column "contry" on profile '
                            'table "fans"; did you mean "country"?'),
        ("definition:3:14", 'lapsed.aud:3:14: error[E202]: unknown event "strem"; '
                            'did you mean "stream"?'),
    ]
    assert err.details().startswith("the definition has 2 errors; first: lapsed.aud:2:10:")


def test_syntax_error_points_at_the_offending_token(server: Running) -> None:
    err = invalid(server.stub.ValidateAudience,
                  rpc.ValidateAudienceRequest(definition="audience x { where: city = }"))
    [(field, description)] = field_violations(err)
    assert field == "definition:1:28"  # the "}" where a value belongs
    assert description.startswith("draft.aud:1:28: error[E103]: ")


def test_condition_draft_is_checked_as_a_where_condition(server: Running) -> None:
    ok = server.stub.ValidateAudience(rpc.ValidateAudienceRequest(
        condition='country = "GB" and did stream in last 7 days', audience_id="gb_streamers"))
    assert list(ok.audiences) == ["audiences/gb_streamers"]
    err = invalid(server.stub.ValidateAudience, rpc.ValidateAudienceRequest(condition='contry = "GB"'))
    assert [f for f, _ in field_violations(err)] == ["condition:1:1"]


def test_sensitive_column_in_a_draft_is_refused(server: Running) -> None:
    err = invalid(server.stub.ValidateAudience, rpc.ValidateAudienceRequest(
        definition='audience pious { where: religion = "x" }'))
    [(field, description)] = field_violations(err)
    assert field == "definition:1:25"
    assert "error[E3" in description and "user.demographic.religious_belief" in description


def test_editing_an_existing_audience_is_not_a_duplicate(server: Running) -> None:
    got = server.stub.ValidateAudience(rpc.ValidateAudienceRequest(
        definition='audience everyone { where: country = "DE" }'))
    assert list(got.audiences) == ["audiences/everyone"]


def test_draft_of_a_file_sees_duplicates_and_references_elsewhere(project_root: Path) -> None:
    (project_root / "audiences" / "more.aud").write_text(
        'audience gb_vips { where: in audience gb_fans and vip = true }\n', encoding="utf-8")
    with serving(project_root) as srv:
        # The new content of test.aud defines gb_vips (already in more.aud) and drops gb_fans,
        # which more.aud still includes.
        draft = 'audience everyone { where: fan_id is not null }\naudience gb_vips { where: vip = true }'
        err = invalid(srv.stub.ValidateAudience, rpc.ValidateAudienceRequest(
            definition=draft, filename="audiences/test.aud"))
        violations = field_violations(err)
    fields = [f for f, _ in violations]
    assert "definition:2:10" in fields  # the duplicate gb_vips
    dup = dict(violations)["definition:2:10"]
    assert dup.startswith("audiences/test.aud:2:10: error[E401]: ")
    elsewhere = [d for f, d in violations if f == "definition"]
    assert len(elsewhere) == 1 and elsewhere[0].startswith("audiences/more.aud:1:")
    assert "gb_fans" in elsewhere[0]


def test_neither_definition_nor_condition_is_invalid(server: Running) -> None:
    err = invalid(server.stub.ValidateAudience, rpc.ValidateAudienceRequest())
    assert [f for f, _ in field_violations(err)] == ["definition"]


# ---- CompileAudience --------------------------------------------------------------------------
def test_compiled_sql_selects_the_members(server: Running) -> None:
    got = server.stub.CompileAudience(rpc.CompileAudienceRequest(
        name="audiences/gb_fans", as_of_time=as_of_ts()))
    assert got.dialect == "duckdb"
    assert got.as_of_time == as_of_ts()
    assert members(server.root, got.sql) == GB_FANS


def test_compiled_sql_for_a_destination_applies_consent(server: Running) -> None:
    got = server.stub.CompileAudience(rpc.CompileAudienceRequest(
        name="audiences/everyone", destination="ads", as_of_time=as_of_ts()))
    assert members(server.root, got.sql) == EXPORTED_ADS


def test_postgres_dialect_runs_on_postgres(server: Running) -> None:
    got = server.stub.CompileAudience(rpc.CompileAudienceRequest(
        name="audiences/us_fans", dialect="postgres", as_of_time=as_of_ts(), pretty=True))
    assert got.dialect == "postgres" and "\n" in got.sql
    schema = f"t_{uuid.uuid4().hex[:10]}"
    load_postgres(schema, ROWS_CONSENT)
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}")
            rows = conn.execute(got.sql).fetchall()
    finally:
        drop_postgres(schema)
    assert sorted(r[0] for r in rows) == US_FANS


def test_draft_is_compiled_instead_of_the_stored_definition(server: Running) -> None:
    draft = server.stub.CompileAudience(rpc.CompileAudienceRequest(
        name="audiences/gb_fans", definition='audience gb_fans { where: country = "US" }',
        as_of_time=as_of_ts()))
    assert members(server.root, draft.sql) == US_FANS
    stored = server.stub.CompileAudience(rpc.CompileAudienceRequest(
        name="audiences/gb_fans", as_of_time=as_of_ts()))
    assert members(server.root, stored.sql) == GB_FANS


def test_draft_with_errors_fails_compile_with_positions(server: Running) -> None:
    err = invalid(server.stub.CompileAudience, rpc.CompileAudienceRequest(
        name="audiences/gb_fans", definition='audience gb_fans {\n  where: contry = "GB"\n}'))
    assert [f for f, _ in field_violations(err)] == ["definition:2:10"]


def test_default_as_of_is_now_to_the_second(server: Running) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    got = server.stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/us_fans"))
    after = datetime.now(UTC)
    assert got.as_of_time.nanos == 0
    assert before <= got.as_of_time.ToDatetime(tzinfo=UTC) <= after


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"name": "audiences/us_fans", "dialect": "oracle"}, "dialect"),
    ({"name": "audiences/us_fans", "destination": "tiktok"}, "destination"),
    ({"name": "us_fans"}, "name"),
])
def test_bad_compile_requests_are_invalid(server: Running, request_fields: dict[str, str],
                                          field: str) -> None:
    err = invalid(server.stub.CompileAudience, rpc.CompileAudienceRequest(**request_fields))
    assert [f for f, _ in field_violations(err)] == [field]


def test_compile_unknown_audience_is_not_found(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/nobody"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_stored_definition_with_errors_is_a_failed_precondition(project_root: Path) -> None:
    (project_root / "audiences" / "broken.aud").write_text(
        'audience broken {\n  where: contry = "GB"\n}\n', encoding="utf-8")
    with serving(project_root) as srv:
        with pytest.raises(grpc.RpcError) as caught:
            srv.stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/broken"))
        listed = srv.stub.GetAudience(rpc.GetAudienceRequest(name="audiences/broken")).audience
        ok = srv.stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/us_fans"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    [failure] = error_details(caught.value)
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    assert [(v.subject, v.description) for v in failure.violations] == [(
        "audiences/broken.aud:2:10",
        'audiences/broken.aud:2:10: error[E201]: unknown column "contry" on profile table "fans"; '
        'did you mean "country"?')]
    assert [d.formatted for d in listed.diagnostics] == [failure.violations[0].description]
    assert ok.sql  # other files' audiences still compile
