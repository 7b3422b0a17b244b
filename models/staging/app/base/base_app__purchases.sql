{#- Every app purchase row (from CSV or JSON Lines), typed, with the reason it is
    not used. A time without a zone is UTC; amounts are USD decimal(18, 2)
    (negative: a refund). The same purchase landed twice counts once. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_customer_id', 'customer_id is null', "'customer_id is blank'"),
    ('missing_purchased_at', 'purchased_at_text is null', "'purchased_at is blank'"),
    ('unparseable_purchased_at', 'purchased_at is null',
        "'purchased_at is not an ISO-8601 date-time: ' || purchased_at_text"),
    ('missing_amount', 'amount_text is null', "'amount is blank'"),
    ('unparseable_amount', 'amount_usd is null',
        "'amount is not a decimal with at most 2 places: ' || amount_text"),
] %}
{%- set repeats = [('duplicate_row', 'occurrence > 1', "'the same purchase landed earlier'")] %}

with

landed as ({{ customer_analytics.landed_rows(source('app', 'purchases'), {
    'customer_id': 'customer_id', 'purchased_at_text': 'purchased_at', 'amount_text': 'amount',
}) }}),

typed as {{ customer_analytics.materialized_cte() }} (
    select
        *,
        {{ customer_analytics.parse_iso_timestamp('purchased_at_text') }} as purchased_at,
        {{ customer_analytics.guarded_cast('amount_text', 'decimal', precision=18, scale=2) }} as amount_usd
    from landed
),

checked as ({{ customer_analytics.checked_rows(problems, 'app_purchases', columns={
    'purchase_id': customer_analytics.generate_surrogate_key(['customer_id', 'purchased_at', 'amount_usd']),
}) }}),

ranked as ({{ customer_analytics.ranked_landings('purchase_id') }}),

final as ({{ customer_analytics.base_final([
    'purchase_id', 'customer_id', 'amount_usd', 'purchased_at',
], problems, repeats, 'app_purchases') }})

select * from final
