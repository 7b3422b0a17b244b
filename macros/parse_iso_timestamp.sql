{#- Parse an ISO-8601 date-time text into a UTC timestamp, or null when the text
    is not a valid date-time. Never raises, so staging can quarantine bad values
    instead of failing the build. Accepted:
        YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z|+HH:MM|+HHMM|-HH:MM|-HHMM]
    A value without a zone is taken as UTC; a value with an offset is converted
    to UTC. Calendar checks (month 1-12, the day within the month, leap years,
    hour <= 23, minute and second <= 59) are done before any cast. Fractions
    beyond microseconds are truncated. Nested CASEs fix the evaluation order:
    PostgreSQL does not short-circuit AND. -#}
{% macro parse_iso_timestamp(expression) -%}
    {%- set text = "trim(" ~ expression ~ ")" -%}
    {%- set shape = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
        ~ "([.][0-9]{1,9})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?$" -%}
    {%- set year = "cast(substr(" ~ text ~ ", 1, 4) as integer)" -%}
    {%- set month = "cast(substr(" ~ text ~ ", 6, 2) as integer)" -%}
    {%- set day = "cast(substr(" ~ text ~ ", 9, 2) as integer)" -%}
    {%- set hour = "cast(substr(" ~ text ~ ", 12, 2) as integer)" -%}
    {%- set minute = "cast(substr(" ~ text ~ ", 15, 2) as integer)" -%}
    {%- set second = "cast(substr(" ~ text ~ ", 18, 2) as integer)" -%}
    {%- set fraction = customer_analytics.regexp_extract(text, "^.{19}([.][0-9]{1,6})") -%}
    {%- set zone_sign = customer_analytics.regexp_extract(
        text, "([+-])[0-9]{2}:?[0-9]{2}$"
    ) -%}
    {%- set zone_hours = "cast("
        ~ customer_analytics.regexp_extract(text, "[+-]([0-9]{2}):?[0-9]{2}$")
        ~ " as integer)" -%}
    {%- set zone_minutes = "cast("
        ~ customer_analytics.regexp_extract(text, "[+-][0-9]{2}:?([0-9]{2})$")
        ~ " as integer)" -%}
    {%- set local_time = "cast(substr(" ~ text ~ ", 1, 10) || ' ' || substr(" ~ text ~ ", 12, 8)"
        ~ " || coalesce(" ~ fraction ~ ", '') as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- set offset_minutes = "case when " ~ zone_sign ~ " is null then 0"
        ~ " when " ~ zone_sign ~ " = '-' then -1 else 1 end"
        ~ " * (coalesce(" ~ zone_hours ~ ", 0) * 60 + coalesce(" ~ zone_minutes ~ ", 0))" -%}
    case
        when not {{ customer_analytics.regexp_like(text, shape) }} then null
        when
            {{ year }} < 1
            or {{ month }} not between 1 and 12
            or {{ day }} < 1
            or {{ day }} > case
                when {{ month }} = 2
                    then case
                        when ({{ year }} % 4 = 0 and {{ year }} % 100 <> 0) or {{ year }} % 400 = 0 then 29
                        else 28
                    end
                when {{ month }} in (4, 6, 9, 11) then 30
                else 31
            end
            or {{ hour }} > 23
            or {{ minute }} > 59
            or {{ second }} > 59
            or coalesce({{ zone_hours }}, 0) > 23
            or coalesce({{ zone_minutes }}, 0) > 59
            then null
        else {{ dbt.dateadd('minute', '-1 * (' ~ offset_minutes ~ ')', local_time) }}
    end
{%- endmacro %}
