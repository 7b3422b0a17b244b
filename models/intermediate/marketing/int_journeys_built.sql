{#- Customer journeys: for each conversion, every session of the same user that
    started strictly before the conversion, in time order (ties by session_id).
    The latest of them has conversion = 1, the others 0. A session can sit in
    several conversions' journeys. Conversions with no earlier session have no
    journey here (see int_conversions_without_journeys). -#}
with

sessions as (

    select
        session_id,
        user_id,
        channel_name,
        holder_engagement,
        closer_engagement,
        impression_interaction,
        event_date,
        session_at
    from {{ ref('stg_marketing__sessions') }}

),

conversions as (

    select
        conv_id,
        user_id,
        revenue,
        converted_at
    from {{ ref('stg_marketing__conversions') }}

),

journey_sessions as (

    select
        conversions.conv_id,
        sessions.session_id,
        conversions.user_id,
        sessions.channel_name,
        sessions.holder_engagement,
        sessions.closer_engagement,
        sessions.impression_interaction,
        conversions.revenue,
        sessions.event_date,
        sessions.session_at,
        conversions.converted_at
    from conversions
    inner join sessions
        on
            conversions.user_id = sessions.user_id
            and conversions.converted_at > sessions.session_at

),

ordered as (

    select
        *,
        row_number() over (
            partition by conv_id order by session_at, session_id
        ) as session_position,
        count(*) over (partition by conv_id) as journey_sessions
    from journey_sessions

),

final as (

    select
        conv_id,
        session_id,
        user_id,
        channel_name,
        cast(session_position as integer) as session_position,
        cast(journey_sessions as integer) as journey_sessions,
        holder_engagement,
        closer_engagement,
        impression_interaction,
        cast(case when session_position = journey_sessions then 1 else 0 end as integer) as conversion,
        revenue,
        event_date,
        session_at,
        converted_at
    from ordered

)

select * from final
