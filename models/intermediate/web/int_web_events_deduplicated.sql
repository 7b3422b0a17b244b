{#- One row per distinct web event: the first landing of each (a file that
    repeats events, or the same event twice in one file, is kept once, with the
    load and position where it first landed). The ranking is staging's, like
    every source's (base_web__events, ranked_landings: see the doc block
    deduplication); this model keeps the first landings and adds each new
    load's once: incremental, it reads the loads not built yet. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=customer_analytics.lookup_indexes(['event_id']),
) }}

{%- set columns = [
    'event_id', 'event_row_id', 'load_id', 'entity_key', 'customer_id', 'event_type', 'verb',
    'last_name', 'adr_city', 'adr_state', 'camera_make', 'camera_model', 'tags_json',
    'file_position', 'total_amount_usd', 'event_at', 'loaded_at',
] %}

with

events as (

    select * from {{ ref('stg_web__events') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

final as (

    select
        {{ columns | join(',\n        ') }}
    from events
    where is_first_landing

)

select * from final
