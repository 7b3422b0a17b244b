{#- The raw landing tables, owned by the runner's loaders (runner/loading.py). Created when missing
    at the start of every dbt invocation (on-run-start) and by the runner before
    it loads, so a warehouse where some source systems were never loaded still
    builds: their sources are simply empty. Column types are portable.
    The runner splits this text on semicolons: keep them out of comments. -#}
{% macro create_raw_landing_tables() -%}
create schema if not exists raw;

create table if not exists raw.loads (
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

-- Loads taken back by `runner unload` (their rows and raw.loads line deleted), and
-- the incremental models rebuilt in full since (see macros/unloads.sql).
create table if not exists raw.unloads (
    load_id varchar not null primary key,
    source_table varchar not null,
    file_name varchar not null,
    file_sha256 varchar not null,
    rows_removed bigint not null,
    loaded_at timestamp not null,
    unloaded_at timestamp not null
);

create table if not exists raw.unload_rebuilds (
    model_id varchar not null,
    load_id varchar not null,
    rebuilt_at timestamp not null,
    primary key (model_id, load_id)
);

create table if not exists raw.web_events (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    loaded_at timestamp not null
);

-- CSV sources: one row per non-blank line after the header, with the original
-- line, and each field as text exactly as it appeared (null when the line could
-- not be split into the expected fields: see parse_error).
create table if not exists raw.store_customers (
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

create table if not exists raw.store_sales (
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
create table if not exists raw.crm_customers (
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

create table if not exists raw.crm_interactions (
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

create table if not exists raw.crm_products (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    date varchar,
    product varchar,
    loaded_at timestamp not null
);

-- CSV or JSON Lines with the same keys (from JSON each value lands as text).
create table if not exists raw.app_sessions (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    session_started_at varchar,
    loaded_at timestamp not null
);

create table if not exists raw.app_purchases (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    customer_id varchar,
    purchased_at varchar,
    amount varchar,
    loaded_at timestamp not null
);
-- The marketing system (a SQLite file or CSV files), fields as text.
create table if not exists raw.session_sources (
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

create table if not exists raw.conversions (
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

create table if not exists raw.session_costs (
    load_id varchar not null,
    file_name varchar not null,
    file_position bigint not null,
    raw_text varchar not null,
    parse_error varchar,
    session_id varchar,
    cost varchar,
    loaded_at timestamp not null
);

-- Attribution results written by `runner attribute` (typed: they come from the
-- runner, not from files). One row per (conversion, session) share.
create table if not exists raw.attribution_customer_journey (
    conv_id varchar not null,
    session_id varchar not null,
    ihc double precision not null,
    initializer double precision,
    holder double precision,
    closer double precision,
    run_id varchar not null,
    received_at timestamp not null
);

-- What the API answered that could not be used, and why.
create table if not exists raw.attribution_rejects (
    run_id varchar not null,
    conv_id varchar not null,
    reason varchar not null,
    detail varchar,
    rejected_at timestamp not null
);

-- One row per `runner attribute` run: its window, counts and outcome.
create table if not exists raw.attribution_runs (
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
{%- endmacro %}
