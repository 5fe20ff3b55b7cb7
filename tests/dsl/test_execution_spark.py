"""The execution tests' audiences run on a real Spark (Spark Connect) over the same fixture data.

The expected member sets are the hand-written ones of tests/dsl/test_execution.py: Spark must
give exactly DuckDB's and PostgreSQL's answers (dsl.md: "identical on every warehouse").
The definition SQL is compiled from the DuckDB fixture project and rendered in Spark's dialect,
with the fixture tables read from a Spark database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlglot import exp

from audience.build import definition_query
from audience.project import Project, load_project
from tests.dsl.test_execution import CASES, Case, project_text
from tests.spark_server import spark_url  # noqa: F401  (session fixture)
from tests.warehouse_fixture import AS_OF, ROWS, TABLES, project_on

DATABASE = "fixture"


def _spark_type(kind: str) -> Any:
    from pyspark.sql import types as t

    return {"BIGINT": t.LongType(), "VARCHAR": t.StringType(), "DATE": t.DateType(), "INTEGER": t.IntegerType(),
            "BOOLEAN": t.BooleanType(), "TIMESTAMP": t.TimestampNTZType(), "DOUBLE": t.DoubleType()}[kind]


@pytest.fixture(scope="module")
def spark(spark_url: str) -> Iterator[Any]:  # noqa: F811
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructField, StructType

    session = SparkSession.builder.remote(spark_url).getOrCreate()
    session.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    for table, cols in TABLES.items():
        schema = StructType([StructField(c, _spark_type(k)) for c, k in cols])
        session.createDataFrame(ROWS.get(table, []), schema).write.mode("overwrite").saveAsTable(f"{DATABASE}.{table}")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with project_on("duckdb", tmp_path_factory.mktemp("spark_exec"), project_text()) as root:
        p = load_project(root)
        yield p
        p.close()


def _on_spark(query: exp.Select) -> str:
    for table in query.find_all(exp.Table):
        if table.name in TABLES and not table.db:
            table.set("db", exp.to_identifier(DATABASE))
    return query.sql(dialect="spark")


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_members_on_spark(spark: Any, project: Project, c: Case) -> None:
    rows = spark.sql(_on_spark(definition_query(project, c.name, AS_OF))).collect()
    assert frozenset(int(r[0]) for r in rows) == c.expected, c.why


def test_fixture_is_loaded(spark: Any) -> None:
    assert spark.sql(f"SELECT COUNT(*) FROM {DATABASE}.streams").collect()[0][0] == len(ROWS["streams"])


