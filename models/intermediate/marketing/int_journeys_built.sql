{#- Customer journeys: for each conversion, every session of the same user that
    started strictly before the conversion, in time order (ties by session_id).
    The latest of them has conversion = 1, the others 0. A session can sit in
    several conversions' journeys. Conversions with no earlier session have no
    journey here (see int_conversions_without_journeys).
    Incremental: the journeys of every user with a session or a conversion
    landed in the lookback window (see macro unprocessed_loads) are built again
    from all their sessions and replace their earlier rows, so a late session
    lands in the journeys it belongs to. -#}
{{ config(
    materialized=customer_analytics.replaced_by_key_materialized(),
    incremental_strategy='delete+insert',
    unique_key='conv_id',
    on_schema_change='fail',
    indexes=customer_analytics.lookup_indexes(['conv_id']),
) }}

with

{% if is_incremental() -%}
touched_users as (

    select user_id
    from {{ ref('stg_marketing__sessions') }}
    where loaded_at >= {{ customer_analytics.incremental_lookback_start('last_loaded_at') }}
    union
    select user_id
    from {{ ref('stg_marketing__conversions') }}
    where loaded_at >= {{ customer_analytics.incremental_lookback_start('last_loaded_at') }}

),

{% endif -%}

sessions as (

    select
        session_id,
        user_id,
        channel_name,
        holder_engagement,
        closer_engagement,
        impression_interaction,
        event_date,
        session_at,
        loaded_at
    from {{ ref('stg_marketing__sessions') }}
    {%- if is_incremental() %}
    where user_id in (select user_id from touched_users)
    {%- endif %}

),

conversions as (

    select
        conv_id,
        user_id,
        revenue,
        converted_at,
        loaded_at
    from {{ ref('stg_marketing__conversions') }}
    {%- if is_incremental() %}
    where user_id in (select user_id from touched_users)
    {%- endif %}

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
        conversions.converted_at,
        case
            when sessions.loaded_at > conversions.loaded_at then sessions.loaded_at
            else conversions.loaded_at
        end as loaded_at
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
        count(*) over (partition by conv_id) as journey_sessions,
        max(loaded_at) over (partition by conv_id) as last_loaded_at
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
        converted_at,
        last_loaded_at
    from ordered

)

select * from final
