{#- The raw landing tables, owned by the runner's loaders. Created when missing
    at the start of every dbt invocation (on-run-start) and by the runner before
    it loads, so a warehouse where some source systems were never loaded still
    builds: their sources are simply empty. Column types are portable. -#}
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
{%- endmacro %}
