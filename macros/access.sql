{#- Access for BI tools (PostgreSQL), on production targets only. The role named by
    the var `bi_role` (default bi_reader) reads the production marts and nothing else:
    the marts' `grants` config gives it SELECT on every mart table on every build, and
    these hooks make sure the role exists and may enter the marts schema. No other
    schema is granted to it, and nothing lets it write.

    A non-production target (dev, ci, dev_alice: see is_production_target) grants the
    BI role nothing: apply_grants skips the marts' grants, ensure_bi_role neither
    creates nor needs the role, and grant_marts_usage grants no usage on the target's
    own marts schema (dev_marts), so a developer's build never shows BI a half-built
    mart. DuckDB has no roles: the hooks do nothing there. -#}

{% macro bi_role() -%}
    {{ return(var('bi_role', 'bi_reader')) }}
{%- endmacro %}


{#- dbt's apply_grants (every materialization calls it with the node's `grants`),
    on production targets only; elsewhere no grant is given or revoked. -#}
{% macro apply_grants(relation, grant_config, should_revoke=True) -%}
    {%- if customer_analytics.is_production_target() -%}
        {{ return(adapter.dispatch('apply_grants', 'dbt')(relation, grant_config, should_revoke)) }}
    {%- endif -%}
{%- endmacro %}


{% macro ensure_bi_role() -%}
    {%- if not customer_analytics.is_production_target() -%}
        {{ return('select 1') }}
    {%- endif -%}
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
    {%- if not customer_analytics.is_production_target() -%}
        {{ return('select 1') }}
    {%- endif -%}
    {{ return(adapter.dispatch('grant_marts_usage', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__grant_marts_usage() -%}
    {%- set marts_schema = customer_analytics.generate_schema_name('marts', none) | trim -%}
    create schema if not exists {{ marts_schema }};
    grant usage on schema {{ marts_schema }} to "{{ customer_analytics.bi_role() }}"
{%- endmacro %}

{% macro duckdb__grant_marts_usage() -%}
    select 1
{%- endmacro %}
