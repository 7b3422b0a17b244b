{#- One row per web order, in the state its latest event describes, whatever
    order the events arrived in. Ties: see the doc block latest_event_wins.
    Incremental: the orders with an event landed in the lookback window (see
    macro unprocessed_loads) are resolved again from all their events and
    replace their earlier rows. -#}
{{ config(
    materialized=customer_analytics.replaced_by_key_materialized(),
    incremental_strategy='delete+insert',
    unique_key='order_id',
    on_schema_change='fail',
    indexes=customer_analytics.lookup_indexes(['order_id']),
) }}

with

order_events as (

    select
        event_id,
        load_id,
        entity_key as order_id,
        customer_id,
        verb,
        file_position,
        total_amount_usd,
        event_at,
        loaded_at
    from {{ ref('int_web_events_deduplicated') }}
    where
        event_type = 'ORDER'
    {% if is_incremental() -%}
        and entity_key in (
            select new_events.entity_key
            from {{ ref('int_web_events_deduplicated') }} as new_events
            where
                new_events.event_type = 'ORDER'
                and new_events.loaded_at >= {{ customer_analytics.incremental_lookback_start('last_loaded_at') }}
        )
        {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by order_id
            order by {{ customer_analytics.latest_event_order() }}
        ) as recency,
        count(*) over (partition by order_id) as order_event_count,
        min(event_at) over (partition by order_id) as first_event_at,
        max(loaded_at) over (partition by order_id) as last_loaded_at
    from order_events

),

final as (

    select
        order_id,
        customer_id,
        event_id as latest_event_id,
        verb as latest_verb,
        cast(order_event_count as integer) as order_event_count,
        total_amount_usd as amount_usd,
        first_event_at as ordered_at,
        event_at as updated_at,
        last_loaded_at
    from ranked
    where recency = 1

)

select * from final
