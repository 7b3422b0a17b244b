{#- Sunday-Saturday week arithmetic, the same on every engine.

    dbt.date_trunc('week', ...) starts weeks on Monday, so the Sunday that starts
    the week of a date is found by truncating the following day to its Monday
    and stepping back one day. -#}

{% macro sunday_week_start(expression) -%}
    cast({{ dbt.dateadd('day', -1, dbt.date_trunc('week', dbt.dateadd('day', 1, 'cast(' ~ expression ~ ' as date)'))) }} as date)
{%- endmacro %}

{#- Number of Sunday-Saturday weeks from the week containing `start` to the week
    containing `end`, both inclusive: a partial week counts as a whole one, and
    the result is at least 1 when start <= end. Both arguments are dates or
    timestamps. Saturday -> next Sunday is 2 weeks; Sunday -> Saturday of the
    same week is 1. Both week starts are Sundays, so the difference is an exact
    number of weeks on every engine. -#}
{% macro sunday_weeks_spanned(start, end) -%}
    cast(({{ dbt.datediff(customer_analytics.sunday_week_start(start), customer_analytics.sunday_week_start(end), 'day') }}) / 7 + 1 as integer)
{%- endmacro %}
