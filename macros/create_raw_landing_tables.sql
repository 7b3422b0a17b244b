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
{% macro create_raw_landing_tables() -%}
    {{ return(adapter.dispatch('create_raw_landing_tables', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__create_raw_landing_tables() -%}
{%- set raw = generate_schema_name('raw', none) | trim -%}
create schema if not exists {{ raw }};

-- loads (runner): One row per file landed by `runner load` (idempotence: one per
-- digest).
create table if not exists {{ raw }}.loads (
    load_id varchar not null primary key,
    source_table varchar not null,
    file_name varchar not null,
    file_sha256 varchar not null,
    file_bytes bigint not null,
    rows_landed bigint not null,
    rows_unparseable bigint not null,
    loaded_at timestamp not null,
    unique (source_table, file_sha256)
);

-- unloads (runner): Loads taken back by `runner unload` (their rows and loads line
-- deleted); see macros/unloads.sql.
create table if not exists {{ raw }}.unloads (
    load_id varchar not null primary key,
    source_table varchar not null,
    file_name varchar not null,
    file_sha256 varchar not null,
    rows_removed bigint not null,
    loaded_at timestamp not null,
    unloaded_at timestamp not null
);

-- unload_rebuilds (runner): The incremental models rebuilt in full since each unload
-- (on-run-end).
create table if not exists {{ raw }}.unload_rebuilds (
    model_id varchar not null,
    load_id varchar not null,
    rebuilt_at timestamp not null,
    primary key (model_id, load_id)
);

-- as_of_date (runner): The as_of_date the last build given the var recorded
-- (macros/as_of_date.sql).
create table if not exists {{ raw }}.as_of_date (
    as_of_date date not null,
    recorded_at timestamp not null
);

-- builds (runner): One row per `runner build` that brought every model up to date:
-- what each source's newest load was when it started, for `runner build --changed`
-- (runner/builds.py).
create table if not exists {{ raw }}.builds (
    build_id varchar not null primary key,
    started_at timestamp not null,
    finished_at timestamp not null,
    as_of_date date not null,
    project_digest varchar not null,
    source_loads varchar not null,
    selected varchar not null
);

-- attribution_customer_journey (ihc): Attribution results written by `runner
-- attribute` (typed: they come from the runner, not from files). One row per
-- (conversion, session) share.
create table if not exists {{ raw }}.attribution_customer_journey (
    conv_id varchar not null,
    session_id varchar not null,
    ihc double precision not null,
    initializer double precision,
    holder double precision,
    closer double precision,
    run_id varchar not null,
    received_at timestamp not null
);

-- attribution_rejects (ihc): What the attribution API answered that could not be used,
-- and why.
create table if not exists {{ raw }}.attribution_rejects (
    run_id varchar not null,
    conv_id varchar not null,
    reason varchar not null,
    detail varchar,
    rejected_at timestamp not null
);

-- attribution_runs (runner): One row per `runner attribute` run: its window, counts
-- and outcome.
create table if not exists {{ raw }}.attribution_runs (
    run_id varchar not null primary key,
    started_at timestamp not null,
    finished_at timestamp,
    start_date date,
    end_date date,
    conv_type_id varchar,
    api_url varchar,
    journeys_selected bigint,
    journeys_sent bigint,
    journeys_skipped bigint,
    conversions_written bigint,
    conversions_rejected bigint,
    requests bigint,
    retries bigint,
    status varchar not null,
    message varchar
);

-- app_messages (app): The app messaging outbox written by `runner message`: one row
-- per customer and cycle, with the rendered text and its delivery status.
create table if not exists {{ raw }}.app_messages (
    message_id varchar not null primary key,
    customer_id varchar not null,
    cycle_start_date date not null,
    cycle_end_date date not null,
    message_bucket varchar not null,
    message_text varchar not null,
    template_file varchar not null,
    sender varchar not null,
    status varchar not null,
    status_reason varchar,
    provider_message_id varchar,
    attempts bigint not null,
    created_at timestamp not null,
    sent_at timestamp,
    updated_at timestamp not null,
    unique (customer_id, cycle_end_date)
);

-- web_events (web): Web events: one row per JSON record, its text kept whole.
create table if not exists {{ raw }}.web_events (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    loaded_at timestamp not null
);

-- store_customers (store): Full store customer extracts, each dated. CSV sources: one
-- row per non-blank line after the header, with the original line, and each field as
-- text exactly as it appeared (null when the line could not be split into the expected
-- fields: see parse_error). Parquet files: one row per record, its text the record as
-- a JSON object, each field as text.
create table if not exists {{ raw }}.store_customers (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    extract_date date not null,
    raw_text varchar not null,
    parse_error varchar,
    id varchar,
    name varchar,
    city varchar,
    loaded_at timestamp not null
);

-- store_sales (store): Store sales (CSV or Parquet, like store customer extracts).
create table if not exists {{ raw }}.store_sales (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customerid varchar,
    product varchar,
    salesamount varchar,
    shopid varchar,
    transactiondate varchar,
    loaded_at timestamp not null
);

-- crm_customers (crm): CRM customers.
create table if not exists {{ raw }}.crm_customers (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    occupation varchar,
    type varchar,
    loaded_at timestamp not null
);

-- crm_interactions (crm): CRM interactions (two header spellings).
create table if not exists {{ raw }}.crm_interactions (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    date_start varchar,
    event varchar,
    customers varchar,
    loaded_at timestamp not null
);

-- crm_products (crm): CRM products of discussion, by month.
create table if not exists {{ raw }}.crm_products (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    date varchar,
    product varchar,
    loaded_at timestamp not null
);

-- app_sessions (app): App sessions. CSV or JSON Lines with the same keys (from JSON
-- each value lands as text).
create table if not exists {{ raw }}.app_sessions (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    session_started_at varchar,
    loaded_at timestamp not null,
    event_id varchar
);

-- app_purchases (app): App purchases, CSV or JSON Lines like app sessions.
create table if not exists {{ raw }}.app_purchases (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    purchased_at varchar,
    amount varchar,
    loaded_at timestamp not null,
    event_id varchar
);

-- app_contacts (app): The app team's customer contacts: a customer's phone number
-- (E.164); the latest landing of a customer wins.
create table if not exists {{ raw }}.app_contacts (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    phone_number varchar,
    loaded_at timestamp not null
);

-- session_sources (marketing): The marketing system's sessions (a SQLite table or a
-- CSV file), fields as text.
create table if not exists {{ raw }}.session_sources (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    session_id varchar,
    user_id varchar,
    event_date varchar,
    event_time varchar,
    channel_name varchar,
    holder_engagement varchar,
    closer_engagement varchar,
    impression_interaction varchar,
    loaded_at timestamp not null
);

-- conversions (marketing): The marketing system's conversions, fields as text.
create table if not exists {{ raw }}.conversions (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    conv_id varchar,
    user_id varchar,
    conv_date varchar,
    conv_time varchar,
    revenue varchar,
    loaded_at timestamp not null
);

-- session_costs (marketing): The marketing system's session costs, fields as text.
create table if not exists {{ raw }}.session_costs (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    session_id varchar,
    cost varchar,
    loaded_at timestamp not null
);

{%- if customer_analytics.raw_column_missing(raw, 'app_sessions', 'event_id') %}
alter table {{ raw }}.app_sessions add column if not exists event_id varchar;
{%- endif %}

{%- if customer_analytics.raw_column_missing(raw, 'app_purchases', 'event_id') %}
alter table {{ raw }}.app_purchases add column if not exists event_id varchar;
{%- endif %}
{%- endmacro %}

{#- Spark runs one statement per call (a hook's statements cannot be joined by `;`), has
    no constraints and no varchar without a length: the same tables as Parquet tables of
    strings, created one statement at a time (runner/sources.py spark_ddl_statements). -#}
{% macro spark__create_raw_landing_tables() -%}
{%- set raw = generate_schema_name('raw', none) | trim -%}
{%- set ddl -%}
create schema if not exists {{ raw }};
create table if not exists {{ raw }}.loads (
    load_id string,
    source_table string,
    file_name string,
    file_sha256 string,
    file_bytes bigint,
    rows_landed bigint,
    rows_unparseable bigint,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.unloads (
    load_id string,
    source_table string,
    file_name string,
    file_sha256 string,
    rows_removed bigint,
    loaded_at timestamp,
    unloaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.unload_rebuilds (
    model_id string,
    load_id string,
    rebuilt_at timestamp
) using parquet;
create table if not exists {{ raw }}.as_of_date (
    as_of_date date,
    recorded_at timestamp
) using parquet;
create table if not exists {{ raw }}.builds (
    build_id string,
    started_at timestamp,
    finished_at timestamp,
    as_of_date date,
    project_digest string,
    source_loads string,
    selected string
) using parquet;
create table if not exists {{ raw }}.attribution_customer_journey (
    conv_id string,
    session_id string,
    ihc double,
    initializer double,
    holder double,
    closer double,
    run_id string,
    received_at timestamp
) using parquet;
create table if not exists {{ raw }}.attribution_rejects (
    run_id string,
    conv_id string,
    reason string,
    detail string,
    rejected_at timestamp
) using parquet;
create table if not exists {{ raw }}.attribution_runs (
    run_id string,
    started_at timestamp,
    finished_at timestamp,
    start_date date,
    end_date date,
    conv_type_id string,
    api_url string,
    journeys_selected bigint,
    journeys_sent bigint,
    journeys_skipped bigint,
    conversions_written bigint,
    conversions_rejected bigint,
    requests bigint,
    retries bigint,
    status string,
    message string
) using parquet;
create table if not exists {{ raw }}.app_messages (
    message_id string,
    customer_id string,
    cycle_start_date date,
    cycle_end_date date,
    message_bucket string,
    message_text string,
    template_file string,
    sender string,
    status string,
    status_reason string,
    provider_message_id string,
    attempts bigint,
    created_at timestamp,
    sent_at timestamp,
    updated_at timestamp
) using parquet;
create table if not exists {{ raw }}.web_events (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.store_customers (
    load_id string,
    file_name string,
    file_position bigint,
    extract_date date,
    raw_text string,
    parse_error string,
    id string,
    name string,
    city string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.store_sales (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    customerid string,
    product string,
    salesamount string,
    shopid string,
    transactiondate string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.crm_customers (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    customer_id string,
    occupation string,
    type string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.crm_interactions (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    date_start string,
    event string,
    customers string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.crm_products (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    date string,
    product string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.app_sessions (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    customer_id string,
    session_started_at string,
    loaded_at timestamp,
    event_id string
) using parquet;
create table if not exists {{ raw }}.app_purchases (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    customer_id string,
    purchased_at string,
    amount string,
    loaded_at timestamp,
    event_id string
) using parquet;
create table if not exists {{ raw }}.app_contacts (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    customer_id string,
    phone_number string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.session_sources (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    session_id string,
    user_id string,
    event_date string,
    event_time string,
    channel_name string,
    holder_engagement string,
    closer_engagement string,
    impression_interaction string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.conversions (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    conv_id string,
    user_id string,
    conv_date string,
    conv_time string,
    revenue string,
    loaded_at timestamp
) using parquet;
create table if not exists {{ raw }}.session_costs (
    load_id string,
    file_name string,
    file_position bigint,
    raw_text string,
    parse_error string,
    session_id string,
    cost string,
    loaded_at timestamp
) using parquet
{%- endset -%}
{%- if execute -%}
    {%- for statement in ddl.split(';') %}{% do run_query(statement) %}{% endfor -%}
{%- endif -%}
select 1 as raw_landing_tables_created
{%- endmacro %}

{% macro raw_sources() -%}
    {{ return([
        {'table': 'web_events', 'system': 'web', 'staged': 'stg_web__events', 'quarantine': 'stg_web__events_quarantine'},
        {'table': 'store_customers', 'system': 'store', 'staged': 'stg_store__customers', 'quarantine': 'stg_store__customers_quarantine'},
        {'table': 'store_sales', 'system': 'store', 'staged': 'stg_store__sales', 'quarantine': 'stg_store__sales_quarantine'},
        {'table': 'crm_customers', 'system': 'crm', 'staged': 'stg_crm__customers', 'quarantine': 'stg_crm__customers_quarantine'},
        {'table': 'crm_interactions', 'system': 'crm', 'staged': 'stg_crm__interactions', 'quarantine': 'stg_crm__interactions_quarantine'},
        {'table': 'crm_products', 'system': 'crm', 'staged': 'stg_crm__products', 'quarantine': 'stg_crm__products_quarantine'},
        {'table': 'app_sessions', 'system': 'app', 'staged': 'stg_app__sessions', 'quarantine': 'stg_app__sessions_quarantine'},
        {'table': 'app_purchases', 'system': 'app', 'staged': 'stg_app__purchases', 'quarantine': 'stg_app__purchases_quarantine'},
        {'table': 'app_contacts', 'system': 'app', 'staged': 'stg_app__contacts', 'quarantine': 'stg_app__contacts_quarantine'},
        {'table': 'session_sources', 'system': 'marketing', 'staged': 'stg_marketing__sessions', 'quarantine': 'stg_marketing__sessions_quarantine'},
        {'table': 'conversions', 'system': 'marketing', 'staged': 'stg_marketing__conversions', 'quarantine': 'stg_marketing__conversions_quarantine'},
        {'table': 'session_costs', 'system': 'marketing', 'staged': 'stg_marketing__session_costs', 'quarantine': 'stg_marketing__session_costs_quarantine'}
    ]) }}
{%- endmacro %}

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
