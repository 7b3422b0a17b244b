{#- Proves that a raw table is split losslessly: every row of `model` appears in
    exactly one of `parts` (by `key_columns`), and no part holds a row that is not
    in `model`. Fails with one row per key that is missing, doubled or foreign. -#}
{% test all_rows_accounted_for(model, key_columns, parts) %}

with

raw_keys as (

    select {{ key_columns | join(', ') }}, count(*) as raw_rows
    from {{ model }}
    group by {{ key_columns | join(', ') }}

),

part_keys as (

    {% for part in parts -%}
        select {{ key_columns | join(', ') }} from {{ part }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

counted_parts as (

    select {{ key_columns | join(', ') }}, count(*) as part_rows
    from part_keys
    group by {{ key_columns | join(', ') }}

)

select
    {% for column in key_columns -%}
        coalesce(raw_keys.{{ column }}, counted_parts.{{ column }}) as {{ column }},
    {% endfor -%}
    coalesce(raw_keys.raw_rows, 0) as raw_rows,
    coalesce(counted_parts.part_rows, 0) as part_rows
from raw_keys
full outer join counted_parts
    on {% for column in key_columns -%}
        raw_keys.{{ column }} = counted_parts.{{ column }}
        {%- if not loop.last %} and {% endif %}
    {%- endfor %}
where coalesce(raw_keys.raw_rows, 0) <> coalesce(counted_parts.part_rows, 0)

{% endtest %}
