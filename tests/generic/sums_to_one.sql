{#- Fails for every group whose values of the column do not sum to 1 within
    `tolerance`: e.g. attributed shares (ihc) per conversion. -#}
{% test sums_to_one(model, column_name, group_by, tolerance=0.000001) %}

select
    {{ group_by }},
    sum({{ column_name }}) as total
from {{ model }}
group by {{ group_by }}
having abs(sum({{ column_name }}) - 1) > {{ tolerance }}

{% endtest %}
