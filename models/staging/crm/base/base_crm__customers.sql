{#- Every row of every CRM customer export, typed, with the reason it is not used.
    The latest export wins: for each customer the last line of the latest load is
    kept; an earlier identical row is a duplicate_row, an earlier different one is
    superseded. -#}
{{ config(materialized='table') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_customer_id', 'customer_id_text is null', "'Customer_Id is blank'"),
    ('unparseable_customer_id', 'customer_id is null',
        "'Customer_Id is not a whole number: ' || customer_id_text"),
] %}
{%- set repeats = [
    ('duplicate_row', 'recency > 1 and line_values = winning_values',
        "'a later row has Customer_Id ' || customer_id_text"),
    ('superseded', 'recency > 1', "'a later row has Customer_Id ' || customer_id_text"),
] %}
{%- set fields = {
    'customer_id_text': 'customer_id', 'occupation': 'occupation', 'customer_type': 'type',
} %}
{%- set typed = {
    'customer_id': customer_analytics.guarded_cast('customer_id_text', 'bigint', signed=false),
    'line_values': "coalesce(occupation, '') || '|' || coalesce(customer_type, '')",
} %}
{%- set columns = ['customer_id', 'occupation', 'customer_type'] %}

{{ customer_analytics.base_model(
    source('crm', 'customers'), 'crm_customers', fields=fields, typed=typed, columns=columns,
    problems=problems, repeats=repeats, latest=['customer_id'], compared='line_values',
    incremental=false, materialize_typed=false
) }}
