{#- Every marketing session row, typed, with the reason it is not used. A session
    id landed again counts once: the first landed row wins; a later identical row
    is a duplicate_row, a later different one a conflicting_session_id. -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_session_id', 'session_id is null', "'session_id is blank'"),
    ('missing_user_id', 'user_id is null', "'user_id is blank'"),
    ('missing_event_time', 'event_date_text is null or event_time_text is null',
        "'event_date or event_time is blank'"),
    ('unparseable_event_time', 'session_at is null',
        "'not a YYYY-MM-DD date and HH:MM:SS time: ' || event_date_text || ' ' || event_time_text"),
    ('missing_channel', 'channel_name is null', "'channel_name is blank'"),
    ('unparseable_flag', 'holder_engagement is null or closer_engagement is null or impression_interaction is null',
        "'an engagement or impression flag is not 0 or 1'"),
] %}
{%- set repeats = [
    ('duplicate_row', 'occurrence > 1 and content_hash = first_content_hash',
        "'session ' || session_id || ' landed earlier'"),
    ('conflicting_session_id', 'occurrence > 1', "'session ' || session_id || ' landed earlier'"),
] %}
{%- set fields = {
    'session_id': 'session_id', 'user_id': 'user_id', 'event_date_text': 'event_date',
    'event_time_text': 'event_time', 'channel_name': 'channel_name', 'holder_text': 'holder_engagement',
    'closer_text': 'closer_engagement', 'impression_text': 'impression_interaction',
} %}
{%- set typed = {
    'session_at': customer_analytics.parse_date_and_time('event_date_text', 'event_time_text'),
    'holder_engagement': "case when holder_text in ('0', '1') then cast(holder_text as integer) end",
    'closer_engagement': "case when closer_text in ('0', '1') then cast(closer_text as integer) end",
    'impression_interaction':
        "case when impression_text in ('0', '1') then cast(impression_text as integer) end",
} %}
{%- set key = {
    'content_hash': customer_analytics.generate_surrogate_key([
        'user_id', 'session_at', 'channel_name', 'holder_engagement', 'closer_engagement', 'impression_interaction',
    ]),
} %}
{%- set columns = [
    'session_id', 'user_id', 'channel_name', 'holder_engagement', 'closer_engagement',
    'impression_interaction', 'content_hash', 'session_at', 'cast(session_at as date) as event_date',
] %}

{{ customer_analytics.base_model(
    source('marketing', 'sessions'), 'session_sources', fields=fields, typed=typed, key=key,
    columns=columns, problems=problems, repeats=repeats, first_landed='session_id',
    compare_content=true
) }}
