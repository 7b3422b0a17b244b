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
{%- endmacro %}
