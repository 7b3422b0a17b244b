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
{%- set fields = {
    'customer_id': 'customer_id', 'purchased_at_text': 'purchased_at', 'amount_text': 'amount',
} %}
{%- set typed = {
    'purchased_at': customer_analytics.parse_iso_timestamp('purchased_at_text'),
    'amount_usd': customer_analytics.guarded_cast('amount_text', 'decimal', precision=18, scale=2),
} %}
{%- set key = {
    'purchase_id': customer_analytics.generate_surrogate_key(['customer_id', 'purchased_at', 'amount_usd']),
} %}
{%- set columns = ['purchase_id', 'customer_id', 'amount_usd', 'purchased_at'] %}

{{ customer_analytics.base_model(
    source('app', 'purchases'), 'app_purchases', fields=fields, typed=typed, key=key,
    columns=columns, problems=problems, repeats=repeats, first_landed='purchase_id'
) }}
