{#- Every row of every store customer extract, typed, with the reason it is not
    used. Within one extract the last line for an ID wins (latest wins, by
    position); an earlier exact repeat of it is a duplicate_row, an earlier
    different line for the same ID is superseded_in_extract. -#}
{{ config(materialized='table') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_id', 'id_text is null', "'ID is blank'"),
    ('unparseable_id', 'customer_id is null', "'ID is not a whole number: ' || id_text"),
] %}
{%- set repeats = [
    ('duplicate_row', 'recency > 1 and line_values = winning_values',
        "'a later line of the same extract has ID ' || id_text"),
    ('superseded_in_extract', 'recency > 1', "'a later line of the same extract has ID ' || id_text"),
] %}
{%- set fields = {
    'id_text': 'id', 'customer_name': 'name', 'city': 'city',
} %}
{%- set typed = {
    'customer_id': customer_analytics.guarded_cast('id_text', 'bigint', signed=false),
    'line_values': "coalesce(customer_name, '') || '|' || coalesce(city, '')",
} %}
{%- set columns = ['extract_date', 'customer_id', 'customer_name', 'city'] %}

{{ customer_analytics.base_model(
    source('store', 'customers'), 'store_customers', fields=fields, typed=typed, columns=columns,
    problems=problems, repeats=repeats, latest=['load_id', 'customer_id'], compared='line_values',
    keep=['extract_date'], incremental=false, materialize_typed=false
) }}
