{#- One row per web order, in the state its latest event describes, whatever
    order the events arrived in. Ties: see the doc block latest_event_wins. -#}
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
    where event_type = 'ORDER'

),

ranked as (

    select
        *,
        row_number() over (
            partition by order_id
            order by {{ customer_analytics.latest_event_order() }}
        ) as recency,
        count(*) over (partition by order_id) as order_event_count,
        min(event_at) over (partition by order_id) as first_event_at
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
        event_at as updated_at
    from ranked
    where recency = 1

)

select * from final
