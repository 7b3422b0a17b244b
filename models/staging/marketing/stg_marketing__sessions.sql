with

base as (

    select * from {{ ref('base_marketing__sessions') }}

),

final as (

    select
        session_id,
        user_id,
        load_id,
        channel_name,
        holder_engagement,
        closer_engagement,
        impression_interaction,
        file_position,
        event_date,
        session_at,
        loaded_at
    from base
    where reason is null

)

select * from final
