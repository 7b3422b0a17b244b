"""The registry of the warehouse's landing tables: every raw source, and the runner's own
tables, each written once here.

A raw source (`RawSource`) is one landing table filled by `runner load`: its source
system, its columns (the landing bookkeeping columns and one text column per field), the
file formats it accepts (with a CSV file's header and the header's accepted aliases), the
loader and `runner load` subcommand that fill it, what its records are called in
messages, and the staged and quarantine models dbt builds from it. The runner's own
tables (`RunnerTable`: the load log, unloads, the remembered as_of date, the attribution
results and runs) are here too, so the whole landing DDL comes from one place.

Derived from it:

- the landing DDL: `ddl_statements(schema)` for the runner (Warehouse.ensure_raw_tables)
  and, rendered by the same code, the dbt macro file macros/create_raw_landing_tables.sql
  (`create_raw_landing_tables()` for the on-run-start hook, `raw_sources()` for the
  data_quality mart). That file is generated: `python -m runner.sources` rewrites it,
  `python -m runner.sources --check` fails when it is stale (python_tests/test_sources.py
  runs the check);
- the loaders' tables (runner.loading.RAW_TABLES, MARKETING_TABLES, SOURCE_NAMES);
- the `runner load` commands (runner.cli);
- the test fixtures that land raw rows (python_tests/conftest.py).

README.md, "Add a source", lists what else a new source needs.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from runner.config import find_project_dir

MACRO_FILE = Path("macros") / "create_raw_landing_tables.sql"
# How the generated macro names the raw schema: the target's, by the one rule of
# generate_schema_name (runner/config.py Settings.schema is the runner's side of it).
DBT_RAW_SCHEMA = "{{ raw }}"


class FileFormat(Enum):
    """A kind of file (or part of one) a raw source accepts."""

    JSON_ARRAY = "a JSON array of objects"
    JSON_LINES = "JSON Lines (one object per line)"
    CSV = "CSV with a header line"
    SQLITE = "a table of a SQLite database"
    PARQUET = "a Parquet file whose columns are the CSV header's names"


class Loader(Enum):
    """How a `runner load` subcommand lands its files (runner.loading)."""

    FILES = "files"  # load_file: each file lands as it is (`runner load NAME FILE...`)
    EXTRACT = "extract"  # load_store_customers: one full extract, dated, in date order
    MARKETING = "marketing"  # load_marketing: a SQLite database or a folder of CSV files


@dataclass(frozen=True)
class Column:
    """A landing table's column: its name and portable SQL type (both engines)."""

    name: str
    type: str = "varchar"
    not_null: bool = False

    def ddl(self) -> str:
        return f"{self.name} {self.type}{' not null' if self.not_null else ''}"

    def spark_ddl(self) -> str:
        """The column on Spark: `string` for varchar (Spark's varchar needs a length), no
        `not null` (a Parquet table of Spark's session catalog does not enforce it)."""
        return f"{self.name} {SPARK_TYPES.get(self.type, self.type)}"


# Spark's names for the registry's portable types, where they differ.
SPARK_TYPES = {"varchar": "string", "double precision": "double"}


# The landing bookkeeping columns every raw source has (extract_date where it applies).
LOAD_ID = Column("load_id", not_null=True)
FILE_NAME = Column("file_name", not_null=True)
FILE_POSITION = Column("file_position", "bigint", not_null=True)  # 1-based record or line
RAW_TEXT = Column("raw_text", not_null=True)  # the record's original text
PARSE_ERROR = Column("parse_error")  # why the record does not parse; null when it does
LOADED_AT = Column("loaded_at", "timestamp", not_null=True)
EXTRACT_DATE = Column("extract_date", "date", not_null=True)  # a full extract's day
# The client's id of an app event: JSON records (JSON Lines files, the HTTP intake of
# runner.intake) may carry it; null for CSV rows. Idempotence key of the intake.
EVENT_ID = Column("event_id")


@dataclass(frozen=True)
class LoadCommand:
    """A `runner load` subcommand: its name, its help text, and how it lands files."""

    name: str
    help: str
    loader: Loader

    @property
    def invocation(self) -> str:
        return f"runner load {self.name}"


@dataclass(frozen=True, kw_only=True)
class RawSource:
    """A raw landing table filled by `runner load`.

    `header` is a CSV file's header as the system writes it (for sources that also take
    JSON Lines, the objects' keys; none for JSON-only sources); each of its names is a
    text column of the table, in lower case, holding the field exactly as it appeared.
    `header_aliases` are other headers accepted for the same fields, in the same order.
    `per_file` are columns with one value for a whole file (a full extract's date).
    `json_fields` are fields only JSON records carry (a CSV header never has them: null
    for CSV rows), such as the app events' `event_id`; their text columns come last, after
    loaded_at, because a table created before they existed gets them by `add column`
    (added_column_statements)."""

    table: str
    system: str  # web, store, crm, app, marketing
    description: str
    noun: str  # what its records are called in messages ("web events")
    formats: tuple[FileFormat, ...]
    command: LoadCommand
    staged_model: str
    quarantine_model: str
    header: tuple[str, ...] = ()
    header_aliases: tuple[tuple[str, ...], ...] = ()
    per_file: tuple[Column, ...] = ()
    json_fields: tuple[Column, ...] = ()

    @property
    def field_columns(self) -> tuple[str, ...]:
        """The columns the fields of a record land in, in the order of `header`, then the
        `json_fields`."""
        return (
            *(name.lower() for name in self.header),
            *(column.name for column in self.json_fields),
        )

    @property
    def columns(self) -> tuple[Column, ...]:
        fields = tuple(Column(name.lower()) for name in self.header)
        return (
            LOAD_ID,
            FILE_NAME,
            FILE_POSITION,
            *self.per_file,
            RAW_TEXT,
            PARSE_ERROR,
            *fields,
            LOADED_AT,
            *self.json_fields,
        )

    def create_sql(self, schema: str) -> str:
        return _create_table(schema, self.table, self.columns)

    def spark_create_sql(self, schema: str) -> str:
        return _create_spark_table(schema, self.table, self.columns)


@dataclass(frozen=True, kw_only=True)
class RunnerTable:
    """A table the runner (or dbt's hooks) writes itself: typed, not landed from files."""

    table: str
    system: str  # runner (bookkeeping) or ihc (attribution results)
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()

    def create_sql(self, schema: str) -> str:
        constraints = []
        if len(self.primary_key) > 1:
            constraints.append(f"primary key ({', '.join(self.primary_key)})")
        if self.unique:
            constraints.append(f"unique ({', '.join(self.unique)})")
        return _create_table(schema, self.table, self.columns, self.primary_key, constraints)

    def spark_create_sql(self, schema: str) -> str:
        return _create_spark_table(schema, self.table, self.columns)


def _create_table(
    schema: str,
    table: str,
    columns: tuple[Column, ...],
    primary_key: tuple[str, ...] = (),
    constraints: list[str] | None = None,
) -> str:
    lines = [
        column.ddl() + (" primary key" if primary_key == (column.name,) else "")
        for column in columns
    ]
    body = ",\n    ".join([*lines, *(constraints or [])])
    return f"create table if not exists {schema}.{table} (\n    {body}\n)"


def _create_spark_table(schema: str, table: str, columns: tuple[Column, ...]) -> str:
    """The table on Spark: a Parquet table without constraints (Spark enforces no keys;
    the runner's idempotence reads raw.loads, and dbt's tests check the keys)."""
    body = ",\n    ".join(column.spark_ddl() for column in columns)
    return f"create table if not exists {schema}.{table} (\n    {body}\n) using parquet"


# --- the `runner load` subcommands ----------------------------------------------------

WEB_EVENTS = LoadCommand(
    "web-events",
    "Land web event files (a JSON array or JSON Lines) in raw.web_events.",
    Loader.FILES,
)
STORE_CUSTOMERS = LoadCommand(
    "store-customers",
    "Land a full store customer extract (CSV: ID,Name,City, or Parquet with those columns) "
    "in raw.store_customers, dated --extract-date or by the YYYY-MM-DD in its name "
    "(store_customers_2017-03-02.csv).",
    Loader.EXTRACT,
)
STORE_SALES = LoadCommand(
    "store-sales",
    "Land store sales files (CSV: CustomerID,Product,SalesAmount,ShopId,TransactionDate, "
    "or Parquet with those columns) in raw.store_sales.",
    Loader.FILES,
)
CRM_CUSTOMERS = LoadCommand(
    "crm-customers",
    "Land CRM customer exports (CSV: Customer_Id,Occupation,Type) in raw.crm_customers.",
    Loader.FILES,
)
CRM_INTERACTIONS = LoadCommand(
    "crm-interactions",
    "Land CRM interaction exports (CSV: date_start,event,customers, or "
    "Date Start,Interaction,Customers) in raw.crm_interactions.",
    Loader.FILES,
)
CRM_PRODUCTS = LoadCommand(
    "crm-products",
    "Land CRM products of discussion (CSV: date,product with MM-YYYY months) in raw.crm_products.",
    Loader.FILES,
)
APP_SESSIONS = LoadCommand(
    "app-sessions",
    "Land app sessions (CSV with header customer_id,session_started_at, or JSON Lines "
    "with those keys) in raw.app_sessions.",
    Loader.FILES,
)
APP_PURCHASES = LoadCommand(
    "app-purchases",
    "Land app purchases (CSV with header customer_id,purchased_at,amount, or JSON Lines "
    "with those keys) in raw.app_purchases.",
    Loader.FILES,
)
APP_CONTACTS = LoadCommand(
    "app-contacts",
    "Land the app team's customer contacts (CSV with header customer_id,phone_number; "
    "numbers in E.164, +14155550100) in raw.app_contacts, for `runner message`.",
    Loader.FILES,
)
MARKETING = LoadCommand(
    "marketing",
    "Land the marketing system's session_sources, conversions and session_costs, from "
    "a SQLite database with those tables (other tables, such as the IHC challenge's "
    "results, are named and ignored) or a folder of CSV files named after them.",
    Loader.MARKETING,
)

# --- the raw sources --------------------------------------------------------------------

JSON = (FileFormat.JSON_ARRAY, FileFormat.JSON_LINES)
CSV = (FileFormat.CSV,)
CSV_OR_JSON_LINES = (FileFormat.CSV, FileFormat.JSON_LINES)
CSV_OR_PARQUET = (FileFormat.CSV, FileFormat.PARQUET)
MARKETING_FORMATS = (FileFormat.SQLITE, FileFormat.CSV)  # a table of the database, or CSV

RAW_SOURCES: tuple[RawSource, ...] = (
    RawSource(
        table="web_events",
        system="web",
        description="Web events: one row per JSON record, its text kept whole.",
        noun="web events",
        formats=JSON,
        command=WEB_EVENTS,
        staged_model="stg_web__events",
        quarantine_model="stg_web__events_quarantine",
    ),
    RawSource(
        table="store_customers",
        system="store",
        description=(
            "Full store customer extracts, each dated. CSV sources: one row per non-blank "
            "line after the header, with the original line, and each field as text exactly "
            "as it appeared (null when the line could not be split into the expected "
            "fields: see parse_error). Parquet files: one row per record, its text the "
            "record as a JSON object, each field as text."
        ),
        noun="store customer extracts",
        formats=CSV_OR_PARQUET,
        header=("ID", "Name", "City"),
        per_file=(EXTRACT_DATE,),
        command=STORE_CUSTOMERS,
        staged_model="stg_store__customers",
        quarantine_model="stg_store__customers_quarantine",
    ),
    RawSource(
        table="store_sales",
        system="store",
        description="Store sales (CSV or Parquet, like store customer extracts).",
        noun="store sales",
        formats=CSV_OR_PARQUET,
        header=("CustomerID", "Product", "SalesAmount", "ShopId", "TransactionDate"),
        command=STORE_SALES,
        staged_model="stg_store__sales",
        quarantine_model="stg_store__sales_quarantine",
    ),
    RawSource(
        table="crm_customers",
        system="crm",
        description="CRM customers.",
        noun="CRM customers",
        formats=CSV,
        header=("Customer_Id", "Occupation", "Type"),
        command=CRM_CUSTOMERS,
        staged_model="stg_crm__customers",
        quarantine_model="stg_crm__customers_quarantine",
    ),
    RawSource(
        table="crm_interactions",
        system="crm",
        description="CRM interactions (two header spellings).",
        noun="CRM interactions",
        formats=CSV,
        header=("date_start", "event", "customers"),
        header_aliases=(("Date Start", "Interaction", "Customers"),),
        command=CRM_INTERACTIONS,
        staged_model="stg_crm__interactions",
        quarantine_model="stg_crm__interactions_quarantine",
    ),
    RawSource(
        table="crm_products",
        system="crm",
        description="CRM products of discussion, by month.",
        noun="CRM products",
        formats=CSV,
        header=("date", "product"),
        command=CRM_PRODUCTS,
        staged_model="stg_crm__products",
        quarantine_model="stg_crm__products_quarantine",
    ),
    RawSource(
        table="app_sessions",
        system="app",
        description=(
            "App sessions. CSV or JSON Lines with the same keys (from JSON each value lands "
            "as text)."
        ),
        noun="app sessions",
        formats=CSV_OR_JSON_LINES,
        header=("customer_id", "session_started_at"),
        json_fields=(EVENT_ID,),
        command=APP_SESSIONS,
        staged_model="stg_app__sessions",
        quarantine_model="stg_app__sessions_quarantine",
    ),
    RawSource(
        table="app_purchases",
        system="app",
        description="App purchases, CSV or JSON Lines like app sessions.",
        noun="app purchases",
        formats=CSV_OR_JSON_LINES,
        header=("customer_id", "purchased_at", "amount"),
        json_fields=(EVENT_ID,),
        command=APP_PURCHASES,
        staged_model="stg_app__purchases",
        quarantine_model="stg_app__purchases_quarantine",
    ),
    RawSource(
        table="app_contacts",
        system="app",
        description=(
            "The app team's customer contacts: a customer's phone number (E.164); the "
            "latest landing of a customer wins."
        ),
        noun="app contacts",
        formats=CSV,
        header=("customer_id", "phone_number"),
        command=APP_CONTACTS,
        staged_model="stg_app__contacts",
        quarantine_model="stg_app__contacts_quarantine",
    ),
    RawSource(
        table="session_sources",
        system="marketing",
        description=(
            "The marketing system's sessions (a SQLite table or a CSV file), fields as text."
        ),
        noun="marketing sessions",
        formats=MARKETING_FORMATS,
        header=(
            "session_id",
            "user_id",
            "event_date",
            "event_time",
            "channel_name",
            "holder_engagement",
            "closer_engagement",
            "impression_interaction",
        ),
        command=MARKETING,
        staged_model="stg_marketing__sessions",
        quarantine_model="stg_marketing__sessions_quarantine",
    ),
    RawSource(
        table="conversions",
        system="marketing",
        description="The marketing system's conversions, fields as text.",
        noun="marketing conversions",
        formats=MARKETING_FORMATS,
        header=("conv_id", "user_id", "conv_date", "conv_time", "revenue"),
        command=MARKETING,
        staged_model="stg_marketing__conversions",
        quarantine_model="stg_marketing__conversions_quarantine",
    ),
    RawSource(
        table="session_costs",
        system="marketing",
        description="The marketing system's session costs, fields as text.",
        noun="marketing session costs",
        formats=MARKETING_FORMATS,
        header=("session_id", "cost"),
        command=MARKETING,
        staged_model="stg_marketing__session_costs",
        quarantine_model="stg_marketing__session_costs_quarantine",
    ),
)

# --- the runner's own tables ------------------------------------------------------------

RUNNER_TABLES: tuple[RunnerTable, ...] = (
    RunnerTable(
        table="loads",
        system="runner",
        description="One row per file landed by `runner load` (idempotence: one per digest).",
        columns=(
            LOAD_ID,
            Column("source_table", not_null=True),
            FILE_NAME,
            Column("file_sha256", not_null=True),
            Column("file_bytes", "bigint", not_null=True),
            Column("rows_landed", "bigint", not_null=True),
            Column("rows_unparseable", "bigint", not_null=True),
            LOADED_AT,
        ),
        primary_key=("load_id",),
        unique=("source_table", "file_sha256"),
    ),
    RunnerTable(
        table="unloads",
        system="runner",
        description=(
            "Loads taken back by `runner unload` (their rows and loads line deleted); see "
            "macros/unloads.sql."
        ),
        columns=(
            LOAD_ID,
            Column("source_table", not_null=True),
            FILE_NAME,
            Column("file_sha256", not_null=True),
            Column("rows_removed", "bigint", not_null=True),
            LOADED_AT,
            Column("unloaded_at", "timestamp", not_null=True),
        ),
        primary_key=("load_id",),
    ),
    RunnerTable(
        table="unload_rebuilds",
        system="runner",
        description="The incremental models rebuilt in full since each unload (on-run-end).",
        columns=(
            Column("model_id", not_null=True),
            LOAD_ID,
            Column("rebuilt_at", "timestamp", not_null=True),
        ),
        primary_key=("model_id", "load_id"),
    ),
    RunnerTable(
        table="as_of_date",
        system="runner",
        description=(
            "The as_of_date the last build given the var recorded (macros/as_of_date.sql)."
        ),
        columns=(
            Column("as_of_date", "date", not_null=True),
            Column("recorded_at", "timestamp", not_null=True),
        ),
    ),
    RunnerTable(
        table="builds",
        system="runner",
        description=(
            "One row per `runner build` that brought every model up to date: what each "
            "source's newest load was when it started, for `runner build --changed` "
            "(runner/builds.py)."
        ),
        columns=(
            Column("build_id", not_null=True),
            Column("started_at", "timestamp", not_null=True),
            Column("finished_at", "timestamp", not_null=True),
            Column("as_of_date", "date", not_null=True),
            Column("project_digest", not_null=True),
            Column("source_loads", not_null=True),  # JSON: source id -> newest load time
            Column("selected", not_null=True),  # what dbt was given to select, or "everything"
        ),
        primary_key=("build_id",),
    ),
    RunnerTable(
        table="attribution_customer_journey",
        system="ihc",
        description=(
            "Attribution results written by `runner attribute` (typed: they come from the "
            "runner, not from files). One row per (conversion, session) share."
        ),
        columns=(
            Column("conv_id", not_null=True),
            Column("session_id", not_null=True),
            Column("ihc", "double precision", not_null=True),
            Column("initializer", "double precision"),
            Column("holder", "double precision"),
            Column("closer", "double precision"),
            Column("run_id", not_null=True),
            Column("received_at", "timestamp", not_null=True),
        ),
    ),
    RunnerTable(
        table="attribution_rejects",
        system="ihc",
        description="What the attribution API answered that could not be used, and why.",
        columns=(
            Column("run_id", not_null=True),
            Column("conv_id", not_null=True),
            Column("reason", not_null=True),
            Column("detail"),
            Column("rejected_at", "timestamp", not_null=True),
        ),
    ),
    RunnerTable(
        table="attribution_runs",
        system="runner",
        description="One row per `runner attribute` run: its window, counts and outcome.",
        columns=(
            Column("run_id", not_null=True),
            Column("started_at", "timestamp", not_null=True),
            Column("finished_at", "timestamp"),
            Column("start_date", "date"),
            Column("end_date", "date"),
            Column("conv_type_id"),
            Column("api_url"),
            Column("journeys_selected", "bigint"),
            Column("journeys_sent", "bigint"),
            Column("journeys_skipped", "bigint"),
            Column("conversions_written", "bigint"),
            Column("conversions_rejected", "bigint"),
            Column("requests", "bigint"),
            Column("retries", "bigint"),
            Column("status", not_null=True),
            Column("message"),
        ),
        primary_key=("run_id",),
    ),
)

# The app messaging outbox (runner/messaging.py, `runner message`): one row per customer
# and messaging cycle, its delivery status kept up to date as it is sent.
APP_MESSAGES = RunnerTable(
    table="app_messages",
    system="app",
    description=(
        "The app messaging outbox written by `runner message`: one row per customer and "
        "cycle, with the rendered text and its delivery status."
    ),
    columns=(
        Column("message_id", not_null=True),  # also the gateway's idempotency key
        Column("customer_id", not_null=True),
        Column("cycle_start_date", "date", not_null=True),
        Column("cycle_end_date", "date", not_null=True),
        Column("message_bucket", not_null=True),
        Column("message_text", not_null=True),
        Column("template_file", not_null=True),
        Column("sender", not_null=True),  # file or twilio: the sender of the last attempt
        Column("status", not_null=True),  # pending, sending, queued, sent, failed
        Column("status_reason"),  # why it failed (the gateway's code and message)
        Column("provider_message_id"),  # the gateway's id (Twilio's sid)
        Column("attempts", "bigint", not_null=True),
        Column("created_at", "timestamp", not_null=True),
        Column("sent_at", "timestamp"),
        Column("updated_at", "timestamp", not_null=True),
    ),
    primary_key=("message_id",),
    unique=("customer_id", "cycle_end_date"),
)
RUNNER_TABLES = (*RUNNER_TABLES, APP_MESSAGES)

LandingTable = RawSource | RunnerTable
LOAD_COMMANDS: tuple[LoadCommand, ...] = tuple(
    dict.fromkeys(source.command for source in RAW_SOURCES)
)


def sources_of(command: LoadCommand) -> tuple[RawSource, ...]:
    """The raw sources a `runner load` subcommand fills, in registry order."""
    return tuple(source for source in RAW_SOURCES if source.command == command)


def landing_tables() -> Iterator[LandingTable]:
    """Every table of the raw schema: the runner's own, then the raw sources."""
    yield from RUNNER_TABLES
    yield from RAW_SOURCES


def ddl_statements(schema: str) -> list[str]:
    """The statements that create the raw schema `schema` and every landing table in it
    that is missing (`if not exists`: running them again changes nothing). The columns
    added to a table since it may have been created: added_column_statements."""
    return [
        f"create schema if not exists {schema}",
        *(table.create_sql(schema) for table in landing_tables()),
    ]


def spark_ddl_statements(schema: str) -> list[str]:
    """ddl_statements for Spark: every landing table with all its columns (a Spark raw
    schema is new with this version, so no table there lacks a later column)."""
    return [
        f"create schema if not exists {schema}",
        *(table.spark_create_sql(schema) for table in landing_tables()),
    ]


def added_column_statements(schema: str) -> list[tuple[str, str, str]]:
    """(table, column, statement) for each column that a landing table created by an
    earlier version lacks (the raw sources' `json_fields`): `alter table ... add column if
    not exists`. Run them only when the column is missing (Warehouse.ensure_raw_tables,
    and the guard of the generated macro): PostgreSQL takes an exclusive lock on the
    table for an `alter table` even when the column exists."""
    return [
        (
            source.table,
            column.name,
            f"alter table {schema}.{source.table} add column if not exists {column.ddl()}",
        )
        for source in RAW_SOURCES
        for column in source.json_fields
    ]


# --- the generated dbt macro file --------------------------------------------------------

MACRO_HEADER = """\
{#- GENERATED from runner/sources.py by `python -m runner.sources`: do not edit by hand
    (python_tests/test_sources.py fails when this file is stale).

    create_raw_landing_tables(): the raw landing tables and the runner's own tables,
    created when missing at the start of every dbt invocation (on-run-start; the runner
    runs the same statements before it loads), so a warehouse where some source systems
    were never loaded still builds: their sources are simply empty. Column types are
    portable. The schema is the target's raw schema (generate_schema_name).

    raw_sources(): every raw source with its staged and quarantine models, for the
    data_quality mart.

    raw_column_missing(): whether a landing table lacks a column, so that a column
    added to the registry is added to a table created before it, and an existing one
    is never altered (PostgreSQL locks a table for any alter). -#}
"""


def render_macro_file() -> str:
    """The text of macros/create_raw_landing_tables.sql."""
    statements = [f"create schema if not exists {DBT_RAW_SCHEMA};"]
    for table in landing_tables():
        comment = textwrap.wrap(f"{table.table} ({table.system}): {table.description}", 84)
        lines = [f"-- {line}" for line in comment]
        statements.append("\n".join([*lines, f"{table.create_sql(DBT_RAW_SCHEMA)};"]))
    for name, column, statement in added_column_statements(DBT_RAW_SCHEMA):
        statements.append(
            f"{{%- if customer_analytics.raw_column_missing(raw, '{name}', '{column}') %}}\n"
            f"{statement};\n{{%- endif %}}"
        )
    sources = ",\n".join(
        f"        {{'table': '{source.table}', 'system': '{source.system}', "
        f"'staged': '{source.staged_model}', 'quarantine': '{source.quarantine_model}'}}"
        for source in RAW_SOURCES
    )
    spark = ";\n".join(spark_ddl_statements(DBT_RAW_SCHEMA))
    return (
        MACRO_HEADER
        + "{% macro create_raw_landing_tables() -%}\n"
        + "    {{ return(adapter.dispatch('create_raw_landing_tables', "
        + "'customer_analytics')()) }}\n"
        + "{%- endmacro %}\n\n"
        + "{% macro default__create_raw_landing_tables() -%}\n"
        + "{%- set raw = generate_schema_name('raw', none) | trim -%}\n"
        + "\n\n".join(statements)
        + "\n{%- endmacro %}\n\n"
        + SPARK_MACRO_DOC
        + "{% macro spark__create_raw_landing_tables() -%}\n"
        + "{%- set raw = generate_schema_name('raw', none) | trim -%}\n"
        + f"{{%- set ddl -%}}\n{spark}\n{{%- endset -%}}\n"
        + "{%- if execute -%}\n"
        + "    {%- for statement in ddl.split(';') %}{% do run_query(statement) %}{% endfor -%}\n"
        + "{%- endif -%}\n"
        + "select 1 as raw_landing_tables_created\n"
        + "{%- endmacro %}\n\n"
        + "{% macro raw_sources() -%}\n"
        + f"    {{{{ return([\n{sources}\n    ]) }}}}\n"
        + "{%- endmacro %}\n\n"
        + RAW_COLUMN_MISSING
    )


SPARK_MACRO_DOC = """\
{#- Spark runs one statement per call (a hook's statements cannot be joined by `;`), has
    no constraints and no varchar without a length: the same tables as Parquet tables of
    strings, created one statement at a time (runner/sources.py spark_ddl_statements). -#}
"""

RAW_COLUMN_MISSING = """\
{% macro raw_column_missing(schema, table, column) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from information_schema.columns where table_schema = '"
        ~ schema ~ "' and table_name = '" ~ table ~ "' and column_name = '" ~ column ~ "'"
    ) -%}
    {{ return(found.columns[0].values()[0] == 0) }}
{%- endmacro %}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.sources",
        description=f"Write {MACRO_FILE} from the registry of raw sources (runner/sources.py).",
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is up to date"
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the dbt project folder (default: as the runner finds it, see runner.config)",
    )
    args = parser.parse_args(argv)
    path = find_project_dir(args.project_dir) / MACRO_FILE
    text = render_macro_file()
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.check:
        if current != text:
            print(
                f"{path} is stale: it does not match the registry in runner/sources.py. "
                "Run `python -m runner.sources` to regenerate it.",
                file=sys.stderr,
            )
            return 1
        print(f"{path} matches the registry.")
        return 0
    if current == text:
        print(f"{path} is up to date.")
    else:
        path.write_text(text, encoding="utf-8")
        print(f"Wrote {path} from the registry.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
