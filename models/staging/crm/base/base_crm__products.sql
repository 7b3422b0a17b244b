{#- Every row of every "products of discussion" export, typed, with the reason it
    is not used. The month is MM-YYYY. One product per month: the latest load's last
    line for a month wins; an earlier identical row is a duplicate_row, an earlier
    different one is superseded. -#}
{{ config(materialized='table') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_month', 'month_text is null', "'date is blank'"),
    ('unparseable_month', 'month_start is null', "'date is not MM-YYYY: ' || month_text"),
    ('missing_product', 'product is null', "'product is blank'"),
] %}
{%- set repeats = [
    ('duplicate_row', 'recency > 1 and product = winning_values',
        "'a later row names the product of ' || month_text"),
    ('superseded', 'recency > 1', "'a later row names the product of ' || month_text"),
] %}
{%- set fields = {
    'month_text': 'date', 'product': 'product',
} %}
{%- set typed = {
    'month_start': "case when " ~ customer_analytics.regexp_like('month_text', '^(0[1-9]|1[0-2])-[0-9]{4}$')
        ~ " then cast(substr(month_text, 4, 4) || '-' || substr(month_text, 1, 2) || '-01' as date) end",
} %}
{%- set columns = ['product', 'month_start'] %}

{{ customer_analytics.base_model(
    source('crm', 'products'), 'crm_products', fields=fields, typed=typed, columns=columns,
    problems=problems, repeats=repeats, latest=['month_start'], compared='product',
    incremental=false, materialize_typed=false
) }}
