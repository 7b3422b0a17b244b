{#- Small cross-database helpers for what dbt's own macros do not cover.
    Each dispatches to a default__ (PostgreSQL syntax) and engine variants. -#}

{% macro regexp_like(expression, pattern) -%}
    {{ return(adapter.dispatch('regexp_like', 'customer_analytics')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regexp_like(expression, pattern) -%}
    ({{ expression }} ~ '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__regexp_like(expression, pattern) -%}
    regexp_matches({{ expression }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regexp_like(expression, pattern) -%}
    ({{ expression }} rlike '{{ pattern }}')
{%- endmacro %}


{% macro regexp_extract(expression, pattern, group=1) -%}
    {{ return(adapter.dispatch('regexp_extract', 'customer_analytics')(expression, pattern, group)) }}
{%- endmacro %}

{% macro default__regexp_extract(expression, pattern, group) -%}
    (regexp_match({{ expression }}, '{{ pattern }}'))[{{ group }}]
{%- endmacro %}

{% macro duckdb__regexp_extract(expression, pattern, group) -%}
    nullif(regexp_extract({{ expression }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}

{#- Spark, like DuckDB, answers '' for no match (or a group that took no part). -#}
{% macro spark__regexp_extract(expression, pattern, group) -%}
    nullif(regexp_extract({{ expression }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}


{% macro parse_json(expression) -%}
    {{ return(adapter.dispatch('parse_json', 'customer_analytics')(expression)) }}
{%- endmacro %}

{% macro default__parse_json(expression) -%}
    cast({{ expression }} as jsonb)
{%- endmacro %}

{% macro duckdb__parse_json(expression) -%}
    case when json_valid({{ expression }}) then cast({{ expression }} as json) end
{%- endmacro %}

{#- Spark has no JSON type (VARIANT sorts an object's keys): the text itself, when
    valid, read by json_field and json_fragment with get_json_object. -#}
{% macro spark__parse_json(expression) -%}
    case when try_parse_json({{ expression }}) is not null then {{ expression }} end
{%- endmacro %}


{% macro json_type(expression) -%}
    {{ return(adapter.dispatch('json_type', 'customer_analytics')(expression)) }}
{%- endmacro %}

{% macro default__json_type(expression) -%}
    jsonb_typeof({{ expression }})
{%- endmacro %}

{% macro duckdb__json_type(expression) -%}
    lower(json_type({{ expression }}))
{%- endmacro %}

{#- The type of a valid JSON text (parse_json), from its first character. -#}
{% macro spark__json_type(expression) -%}
    case left(ltrim({{ expression }}), 1)
        when '{' then 'object'
        when '[' then 'array'
        when '"' then 'string'
        when 't' then 'boolean'
        when 'f' then 'boolean'
        when 'n' then 'null'
        else 'number'
    end
{%- endmacro %}


{#- A top-level field of a parsed JSON object (parse_json) as text: a string
    without its quotes, any other value as its JSON text; null when missing or
    JSON null. -#}
{% macro json_field(expression, field) -%}
    {{ return(adapter.dispatch('json_field', 'customer_analytics')(expression, field)) }}
{%- endmacro %}

{% macro default__json_field(expression, field) -%}
    ({{ expression }} ->> '{{ field }}')
{%- endmacro %}

{% macro spark__json_field(expression, field) -%}
    get_json_object({{ expression }}, '$.{{ field }}')
{%- endmacro %}


{#- A top-level field of a parsed JSON object as JSON text (an array or object as
    it is written, compact). -#}
{% macro json_fragment(expression, field) -%}
    {{ return(adapter.dispatch('json_fragment', 'customer_analytics')(expression, field)) }}
{%- endmacro %}

{% macro default__json_fragment(expression, field) -%}
    cast({{ expression }} -> '{{ field }}' as {{ dbt.type_string() }})
{%- endmacro %}

{% macro spark__json_fragment(expression, field) -%}
    get_json_object({{ expression }}, '$.{{ field }}')
{%- endmacro %}

{#- After `as` in `name as (...)`: keeps a CTE's results instead of re-evaluating
    its expressions wherever they are used. PostgreSQL inlines a CTE read once,
    so an expression such as a JSON parse runs again for every column derived
    from it; DuckDB evaluates each expression once already. -#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
{%- endmacro %}

{% macro postgres__materialized_cte() -%}
    materialized
{%- endmacro %}


{#- The `indexes` config of an incremental model: an index on the columns its
    incremental runs look built rows up by, on PostgreSQL, so those lookups stay
    fast whatever the planner estimates. None elsewhere: DuckDB has no use for
    them, and with one a --full-refresh failed (the model's backup table was gone
    under the models reading it). -#}
{% macro lookup_indexes(columns) -%}
    {{ return([{'columns': columns}] if target.type == 'postgres' else []) }}
{%- endmacro %}


{#- Post-hook of every model and snapshot (dbt_project.yml): on PostgreSQL,
    `analyze` of the table just built, so the models built after it in the same
    run are planned on its true size. PostgreSQL gathers no statistics when a
    table is created or appended to (autovacuum does, a minute or so later), and
    on a table it believes nearly empty it picks nested loops that run for
    minutes. Nothing for views, nor on DuckDB, which keeps its statistics as it
    writes. -#}
{% macro refresh_statistics() -%}
    {{ return(adapter.dispatch('refresh_statistics', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__refresh_statistics() -%}
{%- endmacro %}

{% macro postgres__refresh_statistics() -%}
    {%- if model.config.materialized in ('table', 'incremental', 'snapshot') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}


{#- Pre-hook of every model (dbt_project.yml): on PostgreSQL, no JIT compilation
    for the statements that build the model (`set local`: this transaction only).
    Its planner's cost estimates for these queries reach the JIT thresholds, and
    compiling took 1.2 s of the 1.8 s an incremental base_web__events ran at 1M
    events, while a full build of it ran no faster with JIT (39.6 s against 38.9 s
    without). Nothing on DuckDB. -#}
{% macro build_settings() -%}
    {{ return(adapter.dispatch('build_settings', 'customer_analytics')()) }}
{%- endmacro %}

{% macro default__build_settings() -%}
{%- endmacro %}

{% macro postgres__build_settings() -%}
    set local jit = off
{%- endmacro %}


{#- dbt.dateadd on Spark (dbt_project.yml's `dispatch` puts this project before dbt
    for dbt's macros): dbt-spark's own goes through unix seconds, so it drops the
    fraction of a timestamp (parse_iso_timestamp's offset step kept no
    milliseconds); timestampadd keeps it, and is null on a null date. -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}


{#- dbt.cast on Spark, which dbt also uses to check an enforced contract (a null cast
    to each column's data_type): Spark 4 refuses `varchar` without a length, and its
    text type is `string`; the contracts name varchar, as DuckDB and PostgreSQL do. -#}
{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ 'string' if type | trim | lower in ('varchar', 'text') else type }})
{%- endmacro %}


{#- A decimal divided by a whole number, rounded half away from zero to `scale`
    decimals, as decimal(precision, scale). PostgreSQL and Spark divide decimals
    exactly; DuckDB divides them in double precision, so 94.82 / 16 (5.92625) gave
    5.9262 there and 5.9263 on the others: on DuckDB the quotient is scaled to a
    whole number first, whose halves a double holds exactly. -#}
{% macro decimal_divide(numerator, denominator, precision, scale) -%}
    {{ return(adapter.dispatch('decimal_divide', 'customer_analytics')(numerator, denominator, precision, scale)) }}
{%- endmacro %}

{% macro default__decimal_divide(numerator, denominator, precision, scale) -%}
    cast(round(({{ numerator }}) / ({{ denominator }}), {{ scale }}) as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{% macro duckdb__decimal_divide(numerator, denominator, precision, scale) -%}
    cast(
        cast(round(({{ numerator }}) * {{ 10 ** scale }} / ({{ denominator }})) as decimal(38, 0))
        / {{ 10 ** scale }} as decimal({{ precision }}, {{ scale }})
    )
{%- endmacro %}
