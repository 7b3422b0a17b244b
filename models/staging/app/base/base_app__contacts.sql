{#- Every row of every app contacts file, typed, with the reason it is not used.
    A phone number must be E.164 (+ and 2 to 15 digits, the first not 0; spaces, dots,
    dashes and parentheses between the digits are dropped). The latest landing
    wins: for each customer the last line of the latest load is kept; an earlier
    identical row is a duplicate_row, an earlier different one is superseded. -#}
{{ config(materialized='table') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_customer_id', 'customer_id is null', "'customer_id is blank'"),
    ('missing_phone_number', 'phone_text is null', "'phone_number is blank'"),
    ('invalid_phone_number', 'phone_number is null',
        "'phone_number is not an E.164 number (+ and up to 15 digits): ' || phone_text"),
] %}
{%- set repeats = [
    ('duplicate_row', 'recency > 1 and line_values = winning_values',
        "'a later row has customer_id ' || customer_id"),
    ('superseded', 'recency > 1', "'a later row has customer_id ' || customer_id"),
] %}
{%- set fields = {'customer_id': 'customer_id', 'phone_text': 'phone_number'} %}
{%- set compact = "replace(replace(replace(replace(replace(phone_text, ' ', ''), '-', ''), "
    ~ "'.', ''), '(', ''), ')', '')" %}
{%- set typed = {
    'phone_number': "case when " ~ customer_analytics.regexp_like(compact, '^[+][1-9][0-9]+$')
        ~ " and length(" ~ compact ~ ") <= 16 then " ~ compact ~ " end",
    'line_values': "coalesce(phone_text, '')",
} %}
{%- set columns = ['customer_id', 'phone_number'] %}

{{ customer_analytics.base_model(
    source('app', 'contacts'), 'app_contacts', fields=fields, typed=typed, columns=columns,
    problems=problems, repeats=repeats, latest=['customer_id'], compared='line_values',
    incremental=false, materialize_typed=false
) }}
