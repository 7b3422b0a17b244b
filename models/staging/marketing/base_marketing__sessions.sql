{#- Every marketing session row, typed, with the reason it is not used. A session
    id landed again counts once: the first landed row wins; a later identical row
    is a duplicate_row, a later different one a conflicting_session_id. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        session_id as session_id_field,
        user_id,
        event_date,
        event_time,
        channel_name as channel_field,
        holder_engagement,
        closer_engagement,
        impression_interaction,
        loaded_at
    from {{ source('raw', 'session_sources') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(session_id_field), '') as session_id,
        nullif(trim(user_id), '') as user_id_text,
        nullif(trim(event_date), '') as event_date_text,
        nullif(trim(event_time), '') as event_time_text,
        nullif(trim(channel_field), '') as channel_name,
        nullif(trim(holder_engagement), '') as holder_text,
        nullif(trim(closer_engagement), '') as closer_text,
        nullif(trim(impression_interaction), '') as impression_text
    from source

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        case
            when
                {{ customer_analytics.regexp_like('event_date_text', '^[0-9]{4}-[0-9]{2}-[0-9]{2}$') }}
                and {{ customer_analytics.regexp_like('event_time_text', '^[0-9]{2}:[0-9]{2}:[0-9]{2}$') }}
                then {{ customer_analytics.parse_iso_timestamp("event_date_text || ' ' || event_time_text") }}
        end as session_at,
        case when holder_text in ('0', '1') then cast(holder_text as integer) end as holder_flag,
        case when closer_text in ('0', '1') then cast(closer_text as integer) end as closer_flag,
        case when impression_text in ('0', '1') then cast(impression_text as integer) end as impression_flag
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when session_id is null then 'missing_session_id'
            when user_id_text is null then 'missing_user_id'
            when event_date_text is null or event_time_text is null then 'missing_event_time'
            when session_at is null then 'unparseable_event_time'
            when channel_name is null then 'missing_channel'
            when holder_flag is null or closer_flag is null or impression_flag is null then 'unparseable_flag'
        end as row_problem,
        {{ customer_analytics.generate_surrogate_key([
            'user_id_text', 'session_at', 'channel_name', 'holder_flag', 'closer_flag', 'impression_flag',
        ]) }} as content_hash
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('session_id', compare_content=true) }}

),

final as (

    select
        session_id,
        load_id,
        file_name,
        file_position,
        user_id_text as user_id,
        channel_name,
        holder_flag as holder_engagement,
        closer_flag as closer_engagement,
        impression_flag as impression_interaction,
        raw_text,
        content_hash,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 and content_hash = first_content_hash then 'duplicate_row'
            when occurrence > 1 then 'conflicting_session_id'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_session_id' then 'session_id is blank'
            when row_problem = 'missing_user_id' then 'user_id is blank'
            when row_problem = 'missing_event_time' then 'event_date or event_time is blank'
            when row_problem = 'unparseable_event_time'
                then 'not a YYYY-MM-DD date and HH:MM:SS time: ' || event_date_text || ' ' || event_time_text
            when row_problem = 'missing_channel' then 'channel_name is blank'
            when row_problem = 'unparseable_flag' then 'an engagement or impression flag is not 0 or 1'
            when occurrence > 1 then 'session ' || session_id || ' landed earlier'
        end as reason_detail,
        cast(session_at as date) as event_date,
        session_at,
        loaded_at
    from ranked

)

select * from final
