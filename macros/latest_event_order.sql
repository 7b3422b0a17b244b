{#- ORDER BY clause that puts the event that wins "latest state" first among
    events of one entity. Ties: see the doc block latest_event_wins. -#}
{% macro latest_event_order() -%}
    event_at desc,
    case verb when 'UPDATE' then 1 else 0 end desc,
    loaded_at desc,
    load_id desc,
    file_position desc,
    event_id desc
{%- endmacro %}
