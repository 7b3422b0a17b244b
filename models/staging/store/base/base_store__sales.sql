{#- Every row of every store sales file, typed, with the reason it cannot be used
    (null when valid). Exact duplicates (the same typed values, in any file) count
    once: the first landed is kept, the others are quarantined as duplicate_row. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_customer_id', 'customer_id_text is null', "'CustomerID is blank'"),
    ('unparseable_customer_id', 'customer_id is null', "'CustomerID is not a whole number: ' || customer_id_text"),
    ('missing_amount', 'amount_text is null', "'SalesAmount is blank'"),
    ('unparseable_amount', 'amount_usd is null',
        "'SalesAmount is not a decimal with at most 2 places: ' || amount_text"),
    ('missing_transaction_date', 'transaction_date_text is null', "'TransactionDate is blank'"),
    ('unparseable_transaction_date', 'transacted_at is null',
        "'TransactionDate is not a date or ISO-8601 date-time: ' || transaction_date_text"),
    ('unparseable_shop_id', 'shop_id_text is not null and shop_id is null',
        "'ShopId is not a whole number: ' || shop_id_text"),
] %}
{%- set repeats = [('duplicate_row', 'occurrence > 1', "'the same sale landed earlier'")] %}
{%- set fields = {
    'customer_id_text': 'customerid', 'product': 'product', 'amount_text': 'salesamount',
    'shop_id_text': 'shopid', 'transaction_date_text': 'transactiondate',
} %}
{%- set typed = {
    'customer_id': customer_analytics.guarded_cast('customer_id_text', 'bigint', signed=false),
    'amount_usd': customer_analytics.guarded_cast('amount_text', 'decimal', precision=18, scale=2),
    'shop_id': customer_analytics.guarded_cast('shop_id_text', 'integer', signed=false),
    'transacted_at': customer_analytics.parse_iso_timestamp(
        "case when " ~ customer_analytics.regexp_like('transaction_date_text', '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')
        ~ " then transaction_date_text || ' 00:00:00' else transaction_date_text end"
    ),
} %}
{%- set key = {
    'sale_id': customer_analytics.generate_surrogate_key([
        'customer_id', 'product', 'amount_usd', 'shop_id', 'transacted_at',
    ]),
} %}
{%- set columns = ['sale_id', 'customer_id', 'product', 'shop_id', 'amount_usd', 'transacted_at'] %}

{{ customer_analytics.base_model(
    source('store', 'sales'), 'store_sales', fields=fields, typed=typed, key=key, columns=columns,
    problems=problems, repeats=repeats, first_landed='sale_id'
) }}
