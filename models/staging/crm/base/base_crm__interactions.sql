{#- Every row of every CRM interaction export, typed, with the reason it is not
    used. Date Start is DD/MM/YYYY HH:MM (seconds optional), taken as UTC. The same
    interaction (customer, channel, minute) landed twice counts once. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_date_start', 'date_start_text is null', "'Date Start is blank'"),
    ('unparseable_date_start', 'interaction_at is null', "'Date Start is not DD/MM/YYYY HH:MM: ' || date_start_text"),
    ('missing_channel', 'channel is null', "'the channel (Interaction) is blank'"),
    ('missing_customer_id', 'customer_id_text is null', "'Customers is blank'"),
    ('unparseable_customer_id', 'customer_id is null', "'Customers is not a whole number: ' || customer_id_text"),
] %}
{%- set repeats = [('duplicate_row', 'occurrence > 1', "'the same interaction landed earlier'")] %}
{%- set day_first = "substr(date_start_text, 7, 4) || '-' || substr(date_start_text, 4, 2) || '-'"
    ~ " || substr(date_start_text, 1, 2) || ' ' || substr(date_start_text, 12, 5)"
    ~ " || coalesce(substr(date_start_text, 17, 3), '')"
    ~ " || case when length(date_start_text) = 16 then ':00' else '' end" %}
{%- set fields = {
    'date_start_text': 'date_start', 'channel': 'event', 'customer_id_text': 'customers',
} %}
{%- set typed = {
    'customer_id': customer_analytics.guarded_cast('customer_id_text', 'bigint', signed=false),
    'interaction_at': "case when " ~ customer_analytics.regexp_like(
        'date_start_text', '^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}(:[0-9]{2})?$'
    ) ~ " then " ~ customer_analytics.parse_iso_timestamp(day_first) ~ " end",
} %}
{%- set key = {
    'interaction_id': customer_analytics.generate_surrogate_key(['customer_id', 'channel', 'interaction_at']),
} %}
{%- set columns = ['interaction_id', 'customer_id', 'channel', 'interaction_at'] %}

{{ customer_analytics.base_model(
    source('crm', 'interactions'), 'crm_interactions', fields=fields, typed=typed, key=key,
    columns=columns, problems=problems, repeats=repeats, first_landed='interaction_id'
) }}
