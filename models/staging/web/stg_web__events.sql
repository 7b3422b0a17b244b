with

base as (

    select * from {{ ref('base_web__events') }}

),

final as (

    select
        {{ customer_analytics.generate_surrogate_key(['load_id', 'file_position']) }} as event_row_id,
        {{ customer_analytics.generate_surrogate_key([
            'event_type', 'verb', 'entity_key', 'event_at', 'customer_id',
            'last_name', 'adr_city', 'adr_state', 'camera_make', 'camera_model',
            'total_amount_usd', 'tags_json',
        ]) }} as event_id,
        load_id,
        entity_key,
        customer_id,
        event_type,
        verb,
        last_name,
        adr_city,
        adr_state,
        camera_make,
        camera_model,
        tags_json,
        file_position,
        total_amount_usd,
        event_at,
        loaded_at
    from base
    where reason is null

)

select * from final
