{#- Access for BI tools (PostgreSQL). The role named by the var `bi_role` (default
    bi_reader) reads the marts and nothing else: the marts' `grants` config gives it
    SELECT on every mart table on every build, and these hooks make sure the role
    exists and may enter the marts schema. No other schema is granted to it, and
    nothing lets it write. DuckDB has no roles: both hooks do nothing there. -#}

{% macro bi_role() -%}
    {{ return(var('bi_role', 'bi_reader')) }}
{%- endmacro %}


{% macro ensure_bi_role() -%}
    {{ return(adapter.dispatch('ensure_bi_role', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__ensure_bi_role() -%}
    do $$
    begin
        if not exists (select from pg_roles where rolname = '{{ customer_analytics.bi_role() }}') then
            create role "{{ customer_analytics.bi_role() }}" nologin;
        end if;
    exception when insufficient_privilege then
        raise exception 'role {{ customer_analytics.bi_role() }} does not exist and this user may not create it: run `make setup-postgres` (runner setup-postgres) as a role with CREATEROLE';
    end
    $$
{%- endmacro %}

{% macro duckdb__ensure_bi_role() -%}
    select 1
{%- endmacro %}


{% macro grant_marts_usage() -%}
    {{ return(adapter.dispatch('grant_marts_usage', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__grant_marts_usage() -%}
    create schema if not exists marts;
    grant usage on schema marts to "{{ customer_analytics.bi_role() }}"
{%- endmacro %}

{% macro duckdb__grant_marts_usage() -%}
    select 1
{%- endmacro %}
