with

base as (

    select * from {{ ref('base_web__events') }}

),

final as (

    select
        event_row_id,
        event_id,
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
