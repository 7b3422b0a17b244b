{#- Every conversion row, typed, with the reason it is not used. A conversion id
    landed again counts once (the first landed row wins). Revenue is a
    decimal(18, 4). -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_conv_id', 'conv_id is null', "'conv_id is blank'"),
    ('missing_user_id', 'user_id is null', "'user_id is blank'"),
    ('missing_conversion_time', 'conv_date_text is null or conv_time_text is null',
        "'conv_date or conv_time is blank'"),
    ('unparseable_conversion_time', 'converted_at is null',
        "'not a YYYY-MM-DD date and HH:MM:SS time: ' || conv_date_text || ' ' || conv_time_text"),
    ('missing_revenue', 'revenue_text is null', "'revenue is blank'"),
    ('unparseable_revenue', 'revenue is null', "'revenue is not a decimal: ' || revenue_text"),
] %}
{%- set repeats = [('duplicate_conv_id', 'occurrence > 1', "'conversion ' || conv_id || ' landed earlier'")] %}
{%- set fields = {
    'conv_id': 'conv_id', 'user_id': 'user_id', 'conv_date_text': 'conv_date',
    'conv_time_text': 'conv_time', 'revenue_text': 'revenue',
} %}
{%- set typed = {
    'converted_at': customer_analytics.parse_date_and_time('conv_date_text', 'conv_time_text'),
    'revenue': customer_analytics.guarded_cast('revenue_text', 'decimal', precision=18, scale=4),
} %}
{%- set columns = ['conv_id', 'user_id', 'revenue', 'converted_at'] %}

{{ customer_analytics.base_model(
    source('marketing', 'conversions'), 'conversions', fields=fields, typed=typed, columns=columns,
    problems=problems, repeats=repeats, first_landed='conv_id'
) }}
