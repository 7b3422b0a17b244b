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

with

landed as ({{ customer_analytics.landed_rows(source('crm', 'customers'), {
    'customer_id_text': 'customer_id', 'occupation': 'occupation', 'customer_type': 'type',
}, incremental=false) }}),

typed as (
    select
        *,
        {{ customer_analytics.guarded_cast('customer_id_text', 'bigint', signed=false) }} as customer_id,
        coalesce(occupation, '') || '|' || coalesce(customer_type, '') as line_values
    from landed
),

checked as ({{ customer_analytics.checked_rows(problems, 'crm_customers') }}),

ranked as ({{ customer_analytics.ranked_latest(['customer_id'], 'line_values') }}),

final as ({{ customer_analytics.base_final([
    'customer_id', 'occupation', 'customer_type',
], problems, repeats, 'crm_customers') }})

select * from final
