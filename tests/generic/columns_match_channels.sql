{#- The pivot's shape for BI: the relation's columns must be exactly `key_columns`,
    then one column per channel of the `channels` seed in display order, then
    total_interactions. Fails with one row naming the expected and actual column
    lists when they differ (this test stands in for a contract on the pivots,
    whose columns come from the seed). -#}
{% test columns_match_channels(model, key_columns) %}

{%- set channel_names = [] -%}
{%- for channel in customer_analytics.seed_channels() -%}
    {%- do channel_names.append(customer_analytics.channel_column_name(channel) | trim) -%}
{%- endfor -%}
{%- set expected = key_columns + channel_names + ['total_interactions'] -%}
{%- set actual = [] -%}
{%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(model) -%}
        {%- do actual.append(column.name | lower) -%}
    {%- endfor -%}
{%- endif -%}

select
    '{{ expected | join(",") }}' as expected_columns,
    '{{ actual | join(",") }}' as actual_columns
where '{{ expected | join(",") }}' <> '{{ actual | join(",") }}'

{% endtest %}
