{#- Fails for every row whose column is below `minimum` (nulls are not checked). -#}
{% test at_least(model, column_name, minimum) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ minimum }}

{% endtest %}
