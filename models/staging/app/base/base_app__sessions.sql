{#- Every app session row (from CSV or JSON Lines), typed, with the reason it is
    not used. A time without a zone is UTC. The same session (customer, start)
    landed twice counts once. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_customer_id', 'customer_id is null', "'customer_id is blank'"),
    ('missing_session_started_at', 'started_at_text is null', "'session_started_at is blank'"),
    ('unparseable_session_started_at', 'session_started_at is null',
        "'session_started_at is not an ISO-8601 date-time: ' || started_at_text"),
] %}
{%- set repeats = [('duplicate_row', 'occurrence > 1', "'the same session landed earlier'")] %}
{%- set fields = {
    'customer_id': 'customer_id', 'started_at_text': 'session_started_at',
} %}
{%- set typed = {
    'session_started_at': customer_analytics.parse_iso_timestamp('started_at_text'),
} %}
{%- set key = {
    'session_id': customer_analytics.generate_surrogate_key(['customer_id', 'session_started_at']),
} %}
{%- set columns = ['session_id', 'customer_id', 'session_started_at'] %}

{{ customer_analytics.base_model(
    source('app', 'sessions'), 'app_sessions', fields=fields, typed=typed, key=key,
    columns=columns, problems=problems, repeats=repeats, first_landed='session_id'
) }}
