"""Who can read what on PostgreSQL: the BI role reads every mart and nothing else, and
cannot write anywhere."""

from __future__ import annotations

import psycopg2
import pytest
from click.testing import CliRunner

from python_tests.postgres import PostgresServer
from runner.cli import cli

pytestmark = pytest.mark.postgres

SCHEMAS_REFUSED = ("raw", "staging", "intermediate", "snapshots")


def relations(server: PostgresServer, database: str, schema: str) -> list[str]:
    con = server.connect(database)
    with con.cursor() as cursor:
        cursor.execute(
            "select table_name from information_schema.tables where table_schema = %s "
            "order by table_name",
            (schema,),
        )
        names = [row[0] for row in cursor.fetchall()]
    con.close()
    return names


def test_bi_role_reads_marts_only_and_writes_nothing(pg_server, pg_database, bi_role):
    runner = CliRunner()
    setup = runner.invoke(
        cli, ["setup-postgres", "-t", "postgres", "--bi-role", bi_role, "--login"]
    )
    assert setup.exit_code == 0, setup.output
    built = runner.invoke(
        cli, ["build", "-t", "postgres", "--", "--vars", f"{{bi_role: {bi_role}}}"]
    )
    assert built.exit_code == 0, built.output

    marts = relations(pg_server, pg_database, "marts")
    assert "customer_ltv" in marts and "channel_reporting" in marts
    others = {schema: relations(pg_server, pg_database, schema) for schema in SCHEMAS_REFUSED}
    assert all(others.values()), others

    bi = psycopg2.connect(
        host=pg_server.host, port=pg_server.port, user=bi_role, dbname=pg_database
    )
    bi.autocommit = True
    try:
        with bi.cursor() as cursor:
            for mart in marts:
                cursor.execute(f"select count(*) from marts.{mart}")  # every mart readable
            for schema, names in others.items():
                for name in names:
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                        cursor.execute(f"select * from {schema}.{name} limit 1")
            for statement in (
                "insert into marts.dim_crm_channels (channel, display_order) values ('x', 99)",
                "delete from marts.customer_ltv",
                "create table marts.intruder (x integer)",
                "create table public.intruder (x integer)",
                "create table raw.intruder (x integer)",
                "drop table marts.customer_ltv",
            ):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cursor.execute(statement)
    finally:
        bi.close()

    # Grants are re-applied on every build: a rebuilt mart is readable again.
    again = runner.invoke(cli, ["build", "-t", "postgres", "--", "--select", "dim_crm_channels",
                                "--vars", f"{{bi_role: {bi_role}}}"])  # fmt: skip
    assert again.exit_code == 0, again.output
    bi = psycopg2.connect(
        host=pg_server.host, port=pg_server.port, user=bi_role, dbname=pg_database
    )
    with bi.cursor() as cursor:
        cursor.execute("select count(*) from marts.dim_crm_channels")
        assert cursor.fetchone()[0] == 7
    bi.close()


def test_setup_postgres_refuses_duckdb():
    result = CliRunner().invoke(cli, ["setup-postgres"])
    assert result.exit_code == 1 and "DuckDB has no roles" in result.output
