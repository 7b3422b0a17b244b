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

with

landed as ({{ customer_analytics.landed_rows(source('marketing', 'sessions'), {
    'session_id': 'session_id', 'user_id': 'user_id', 'event_date_text': 'event_date',
    'event_time_text': 'event_time', 'channel_name': 'channel_name', 'holder_text': 'holder_engagement',
    'closer_text': 'closer_engagement', 'impression_text': 'impression_interaction',
}) }}),

typed as {{ customer_analytics.materialized_cte() }} (
    select
        *,
        {{ customer_analytics.parse_date_and_time('event_date_text', 'event_time_text') }} as session_at,
        case when holder_text in ('0', '1') then cast(holder_text as integer) end as holder_engagement,
        case when closer_text in ('0', '1') then cast(closer_text as integer) end as closer_engagement,
        case when impression_text in ('0', '1') then cast(impression_text as integer) end as impression_interaction
    from landed
),

checked as ({{ customer_analytics.checked_rows(problems, 'session_sources', columns={
    'content_hash': customer_analytics.generate_surrogate_key([
        'user_id', 'session_at', 'channel_name', 'holder_engagement', 'closer_engagement', 'impression_interaction',
    ]),
}) }}),

ranked as ({{ customer_analytics.ranked_landings('session_id', compare_content=true) }}),

final as ({{ customer_analytics.base_final([
    'session_id', 'user_id', 'channel_name', 'holder_engagement', 'closer_engagement',
    'impression_interaction', 'content_hash', 'session_at', 'cast(session_at as date) as event_date',
], problems, repeats, 'session_sources') }})

select * from final
