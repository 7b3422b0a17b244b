{#- The date the marts are evaluated at. The warehouse remembers the as_of_date it was
    built for: a build given the var (dbt build --vars '{as_of_date: 2017-04-30}')
    records it in raw.as_of_date (hook remember_as_of_date), and a later build without
    the var uses the recorded date, so a plain `dbt build` after `make demo` still
    evaluates the 2017 sample at 2017-04-30. `--vars '{as_of_date: today}'` forgets it:
    from then on builds use the current date, as they do on a warehouse that was never
    given the var. Unit tests never read the recorded date (they are about their own
    given rows): without an `overrides: vars:` they get the current date. -#}
{% macro as_of_date() -%}
    {%- set value = customer_analytics.as_of_date_var() -%}
    {%- if value == 'today' -%}
        current_date
    {%- elif value is not none -%}
        cast('{{ value }}' as date)
    {%- else -%}
        {%- set remembered = customer_analytics.remembered_as_of_date() -%}
        {%- if remembered is none -%}
            current_date
        {%- else -%}
            cast('{{ remembered }}' as date)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The var as_of_date, checked: 'today', a YYYY-MM-DD text, or none when unset (or empty).
    Without the var, the environment variable DBT_AS_OF_DATE stands for it: a var change
    makes dbt parse the whole project again, an environment variable only the files that
    read it, so `runner build` passes a --vars as_of_date this way (runner/as_of.py). -#}
{% macro as_of_date_var() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or value | string == '' -%}
        {%- set value = env_var('DBT_AS_OF_DATE', '') -%}
    {%- endif -%}
    {%- if value is none or value | string == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = value | string -%}
    {%- if value != 'today' and not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD or today, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The as_of_date recorded in raw.as_of_date by an earlier build (YYYY-MM-DD), or none:
    none while parsing, in unit tests, when the table is missing or empty. -#}
{% macro remembered_as_of_date() -%}
    {%- if not execute or model is not mapping or model.get('resource_type') == 'unit_test' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set raw_schema = customer_analytics.generate_schema_name('raw', none) | trim -%}
    {%- set relation = adapter.get_relation(database=target.database, schema=raw_schema, identifier='as_of_date') -%}
    {%- if relation is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query('select max(as_of_date) from ' ~ relation).rows -%}
    {%- if rows | length == 0 or rows[0][0] is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(rows[0][0] | string) }}
{%- endmacro %}

{#- on-run-start: record the var as_of_date, when given, in raw.as_of_date (one row);
    'today' empties it. Without the var the recorded date stays as it is. The table is
    the registry's (runner/sources.py), made by the hook before: create_raw_landing_tables. -#}
{% macro remember_as_of_date() -%}
    {{ return(adapter.dispatch('remember_as_of_date', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__remember_as_of_date() -%}
    {%- set value = customer_analytics.as_of_date_var() -%}
    {%- set raw_schema = customer_analytics.generate_schema_name('raw', none) | trim -%}
    {%- if value is not none %}
    delete from {{ raw_schema }}.as_of_date;
    {%- if value != 'today' %}
    insert into {{ raw_schema }}.as_of_date (as_of_date, recorded_at)
    values (cast('{{ value }}' as date), {{ dbt.current_timestamp() }});
    {%- endif %}
    {%- endif %}
{%- endmacro %}

{#- Spark: a Parquet table has no delete and a hook runs one statement: one insert
    overwrite replaces the row ('today': with none). -#}
{% macro spark__remember_as_of_date() -%}
    {%- set value = customer_analytics.as_of_date_var() -%}
    {%- set raw_schema = customer_analytics.generate_schema_name('raw', none) | trim -%}
    {%- if value is none -%}
    select 1 as as_of_date_kept
    {%- else %}
    insert overwrite table {{ raw_schema }}.as_of_date
    select cast('{{ '1900-01-01' if value == 'today' else value }}' as date), {{ dbt.current_timestamp() }}
    {%- if value == 'today' %}
    where false
    {%- endif %}
    {%- endif %}
{%- endmacro %}
