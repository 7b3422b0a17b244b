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

with

landed as ({{ customer_analytics.landed_rows(source('store', 'customers'), {
    'id_text': 'id', 'customer_name': 'name', 'city': 'city',
}, keep=['extract_date'], incremental=false) }}),

typed as (
    select
        *,
        {{ customer_analytics.guarded_cast('id_text', 'bigint', signed=false) }} as customer_id,
        coalesce(customer_name, '') || '|' || coalesce(city, '') as line_values
    from landed
),

checked as ({{ customer_analytics.checked_rows(problems, 'store_customers') }}),

ranked as ({{ customer_analytics.ranked_latest(['load_id', 'customer_id'], 'line_values') }}),

final as ({{ customer_analytics.base_final([
    'extract_date', 'customer_id', 'customer_name', 'city',
], problems, repeats, 'store_customers') }})

select * from final
