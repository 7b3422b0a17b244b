{#- The shapes every staging base model shares (documented in macros/_macros.yml):
    landing and cleaning the text fields, guarded casts, the first problem of a row,
    its quarantine reason and detail, and the split into valid and quarantined rows.
    Ranking (first landed wins, latest wins): macros/incremental.sql. -#}

{#- Text clean-up: trimmed, and null when blank. -#}
{% macro clean_text(expression) -%}
    nullif(trim({{ expression }}), '')
{%- endmacro %}


{#- The columns every raw landing table has, in this order. -#}
{% macro landing_columns() -%}
    load_id, file_name, file_position, raw_text, parse_error, loaded_at
{%- endmacro %}


{#- The landed rows of a raw table: the landing columns every raw table has, the
    `keep` columns as they are, and each `fields` column cleaned up
    ({new name: raw column}). Incremental models read only the loads not built yet. -#}
{% macro landed_rows(relation, fields, keep=[], incremental=true) -%}
    {%- set columns = [customer_analytics.landing_columns()] + keep -%}
    {%- for name, column in fields.items() -%}
        {%- do columns.append(customer_analytics.clean_text(column) ~ ' as ' ~ name) -%}
    {%- endfor %}
    select
        {{ columns | join(',\n        ') }}
    from {{ relation }}
    {%- if incremental %}
    where {{ customer_analytics.unprocessed_loads() }}
    {%- endif %}
{%- endmacro %}


{#- The regular expression (without anchors) of the numbers a type holds exactly:
    decimal(precision, scale) takes at most precision - scale integer digits and
    scale decimals; integer, bigint and smallint take as many digits as their
    largest value has (the range itself is checked by guarded_cast).
    signed=false refuses a minus sign. -#}
{% macro numeric_pattern(type, precision=none, scale=0, signed=true) -%}
    {%- set sign = '-?' if signed else '' -%}
    {%- set kind = type | lower -%}
    {%- if kind in ('decimal', 'numeric') -%}
        {%- if precision is none or scale is none or scale < 0 or scale > precision or precision < 1 -%}
            {{ exceptions.raise_compiler_error(
                "numeric_pattern: decimal needs 1 <= precision and 0 <= scale <= precision, got ("
                ~ precision ~ ", " ~ scale ~ "): pass precision= and scale= of the target type."
            ) }}
        {%- endif -%}
        {%- set integer_digits = precision - scale -%}
        {%- set integer_part = '[0-9]{1,' ~ integer_digits ~ '}' if integer_digits > 0 else '0' -%}
        {%- set fraction_part = '([.][0-9]{1,' ~ scale ~ '})?' if scale > 0 else '' -%}
        {{- sign ~ integer_part ~ fraction_part -}}
    {%- else -%}
        {{- sign ~ '[0-9]{1,' ~ (customer_analytics.integer_range(kind)[1] | string | length) ~ '}' -}}
    {%- endif -%}
{%- endmacro %}


{#- (smallest, largest) value of an integer type. -#}
{% macro integer_range(type) -%}
    {%- set ranges = {
        'smallint': (-32768, 32767),
        'integer': (-2147483648, 2147483647),
        'int': (-2147483648, 2147483647),
        'bigint': (-9223372036854775808, 9223372036854775807),
    } -%}
    {%- if type | lower not in ranges -%}
        {{ exceptions.raise_compiler_error(
            "guarded_cast: unknown type '" ~ type ~ "': use decimal (with precision and scale), "
            ~ "smallint, integer or bigint."
        ) }}
    {%- endif -%}
    {{ return(ranges[type | lower]) }}
{%- endmacro %}


{#- Text to a number, or null when the text is not a number the type holds
    exactly: never raises, so staging can quarantine the row. The accepted digits
    come from the type (numeric_pattern); an integer type's range is checked on
    a decimal(38, 0) before the cast. Nested CASEs fix the evaluation order. -#}
{% macro guarded_cast(expression, type, precision=none, scale=0, signed=true) -%}
    {%- set kind = type | lower -%}
    {%- set shape = '^' ~ customer_analytics.numeric_pattern(kind, precision, scale, signed) ~ '$' -%}
    {%- if kind in ('decimal', 'numeric') -%}
        case
            when {{ customer_analytics.regexp_like(expression, shape) }}
                then cast({{ expression }} as decimal({{ precision }}, {{ scale }}))
        end
    {%- else -%}
        {%- set bounds = customer_analytics.integer_range(kind) -%}
        case
            when {{ customer_analytics.regexp_like(expression, shape) }}
                then case
                    when cast({{ expression }} as decimal(38, 0)) between {{ bounds[0] }} and {{ bounds[1] }}
                        then cast({{ expression }} as {{ kind }})
                end
        end
    {%- endif -%}
{%- endmacro %}


{#- A compile error when a rule's reason is not one of quarantine_reasons(source_table). -#}
{% macro check_reasons(rules, source_table, caller_name) -%}
    {%- set known = customer_analytics.quarantine_reasons(source_table) -%}
    {%- for reason, condition, detail in rules -%}
        {%- if reason not in known -%}
            {{ exceptions.raise_compiler_error(
                caller_name ~ ": reason '" ~ reason ~ "' is not in quarantine_reasons('" ~ source_table
                ~ "'): add it there (macros/quarantine_reasons.sql) with its meaning."
            ) }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}


{#- The first problem a row has: the reason of the first rule whose condition
    holds, or null. `rules`: a list of (reason, condition, detail) in order, each
    reason one of quarantine_reasons(source_table). -#}
{% macro first_problem(rules, source_table) -%}
    {%- do customer_analytics.check_reasons(rules, source_table, 'first_problem') -%}
    case
        {%- for reason, condition, detail in rules %}
        when {{ condition }} then '{{ reason }}'
        {%- endfor %}
    end
{%- endmacro %}


{#- The quarantine columns of a base model: `reason` (the row's problem, else the
    first repeat rule that holds) and `reason_detail` (its words, with the
    offending value). `problems`: the (reason, condition, detail) rules of
    first_problem, already in the column row_problem; `repeats`: rules on the
    ranking (e.g. occurrence > 1) for rows without a problem. -#}
{% macro quarantine_columns(problems, repeats, source_table) -%}
    {%- do customer_analytics.check_reasons(repeats, source_table, 'quarantine_columns') -%}
    case
        when row_problem is not null then row_problem
        {%- for reason, condition, detail in repeats %}
        when {{ condition }} then '{{ reason }}'
        {%- endfor %}
    end as reason,
    case
        {%- for reason, condition, detail in problems %}
        when row_problem = '{{ reason }}' then {{ detail }}
        {%- endfor %}
        {%- for reason, condition, detail in repeats %}
        when row_problem is null and {{ condition }} then {{ detail }}
        {%- endfor %}
    end as reason_detail
{%- endmacro %}


{#- The select of a base model's `checked` CTE: every row of `relation` with
    its first problem (first_problem) as `row_problem`, and the `columns`
    ({name: SQL expression}) computed on it, e.g. the natural key to rank by. -#}
{% macro checked_rows(problems, source_table, relation='typed', columns={}) -%}
    select
        *,
        {%- for name, expression in columns.items() %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        {{ customer_analytics.first_problem(problems, source_table) }} as row_problem
    from {{ relation }}
{%- endmacro %}


{#- The select of a base model's `final` CTE: the given columns of `relation`,
    the landing columns (load_id, file_name, file_position, raw_text,
    loaded_at) and the quarantine columns (quarantine_columns) of its rules. -#}
{% macro base_final(columns, problems, repeats, source_table, relation='ranked') -%}
    select
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        load_id,
        file_name,
        file_position,
        raw_text,
        loaded_at,
        {{ customer_analytics.quarantine_columns(problems, repeats, source_table) }}
    from {{ relation }}
{%- endmacro %}


{#- A whole staging base model, the shape every one but web events shares:
    landed (landed_rows) -> typed (the `typed` expressions) -> checked
    (checked_rows: row_problem and the `key` columns) -> ranked (first landed
    wins: ranked_landings on `first_landed`; latest wins: ranked_latest on
    `latest`) -> final (base_final). -#}
{% macro base_model(
    relation, source_table, fields, typed, problems, repeats, columns,
    key={}, first_landed=none, compare_content=false, latest=none, compared=none,
    keep=[], incremental=true, materialize_typed=true
) -%}
with

landed as (
    {{ customer_analytics.landed_rows(relation, fields, keep=keep, incremental=incremental) }}
),

typed as {% if materialize_typed %}{{ customer_analytics.materialized_cte() }} {% endif %}(
    select
        *
        {%- for name, expression in typed.items() %},
        {{ expression }} as {{ name }}
        {%- endfor %}
    from landed
),

checked as (
    {{ customer_analytics.checked_rows(problems, source_table, columns=key) }}
),

ranked as (
    {%- if first_landed is not none %}
    {{ customer_analytics.ranked_landings(first_landed, compare_content=compare_content) }}
    {%- elif latest is not none %}
    {{ customer_analytics.ranked_latest(latest, compared) }}
    {%- else %}
    {{ exceptions.raise_compiler_error(
        "base_model of " ~ source_table ~ ": give first_landed (the key whose first landing wins) "
        ~ "or latest (the columns whose latest landing wins)."
    ) }}
    {%- endif %}
),

final as (
    {{ customer_analytics.base_final(columns, problems, repeats, source_table) }}
)

select * from final
{%- endmacro %}


{#- The valid rows of a base model (reason null), the given columns. -#}
{% macro valid_rows(base, columns) -%}
    select
        {{ columns | join(',\n        ') }}
    from {{ base }}
    where reason is null
{%- endmacro %}


{#- The quarantined rows of a base model (reason not null): the landing columns,
    the reason and its detail, and any `extra` columns. -#}
{% macro quarantined_rows(base, extra=[]) -%}
    select
        load_id,
        file_name,
        reason,
        reason_detail,
        raw_text,
        file_position,
        {%- for column in extra %}
        {{ column }},
        {%- endfor %}
        loaded_at
    from {{ base }}
    where reason is not null
{%- endmacro %}


{#- A YYYY-MM-DD date text and an HH:MM:SS time text (UTC) to a timestamp, or
    null when either is not of that shape or not a real date-time. -#}
{% macro parse_date_and_time(date_expression, time_expression) -%}
    case
        when
            {{ customer_analytics.regexp_like(date_expression, '^[0-9]{4}-[0-9]{2}-[0-9]{2}$') }}
            and {{ customer_analytics.regexp_like(time_expression, '^[0-9]{2}:[0-9]{2}:[0-9]{2}$') }}
            then {{ customer_analytics.parse_iso_timestamp(date_expression ~ " || ' ' || " ~ time_expression) }}
    end
{%- endmacro %}
