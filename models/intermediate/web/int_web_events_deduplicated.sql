{#- One row per distinct web event. The same event landed twice (a file that
    repeats events, or the same event twice in one file) is kept once, with the
    load and position where it first landed.
    Incremental: the events of loads not built yet are ranked among themselves,
    and those already here (an event_id landed earlier) are left out. A repeat
    carries its original's event_at, so only rows from the batch's earliest
    event_at on are searched. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=customer_analytics.lookup_indexes(['event_id']),
) }}

with

events as (

    select * from {{ ref('stg_web__events') }}
    where {{ customer_analytics.unprocessed_loads() }}

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

first_landings as (

    select * from ranked
    where occurrence = 1
    {% if is_incremental() -%}
        and not exists (
            select 1
            from {{ this }} as built
            where
                built.event_id = ranked.event_id
                and built.event_at >= (select min(events.event_at) from events)
        )
    {%- endif %}

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
    from first_landings

)

select * from final
