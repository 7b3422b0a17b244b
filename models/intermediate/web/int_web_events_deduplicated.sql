{#- One row per distinct web event. The same event landed twice (a file that
    repeats events, or the same event twice in one file) is kept once, with the
    load and position where it first landed. -#}
with

events as (

    select * from {{ ref('stg_web__events') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_id
            order by loaded_at, load_id, file_position
        ) as occurrence
    from events

),

final as (

    select
        event_id,
        event_row_id,
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
    from ranked
    where occurrence = 1

)

select * from final
