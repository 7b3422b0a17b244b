{#- Type-2 history of customers from the web stream: every CUSTOMER event is a
    version, valid from its event_time until the next version's. An event
    carries the customer's whole state (a missing attribute is unknown, not
    "unchanged"). Events are ordered by time, not arrival, so a late NEW slots
    in before later UPDATEs. Two versions at the very same instant cannot both
    be valid: the one that wins the tie-break stands, the other is dropped.
    Ties: see the doc block latest_event_wins. -#}
with

customer_events as (

    select
        event_id,
        load_id,
        entity_key as customer_id,
        verb,
        last_name,
        adr_city,
        adr_state,
        file_position,
        event_at,
        loaded_at
    from {{ ref('int_web_events_deduplicated') }}
    where event_type = 'CUSTOMER'

),

ranked_within_instant as (

    select
        *,
        row_number() over (
            partition by customer_id, event_at
            order by {{ customer_analytics.latest_event_order() }}
        ) as recency_within_instant
    from customer_events

),

versions as (

    select
        customer_id,
        event_id,
        verb,
        last_name,
        adr_city,
        adr_state,
        event_at as valid_from,
        lead(event_at) over (partition by customer_id order by event_at) as valid_to
    from ranked_within_instant
    where recency_within_instant = 1

),

final as (

    select
        {{ customer_analytics.generate_surrogate_key(['customer_id', 'valid_from']) }} as customer_version_id,
        customer_id,
        event_id,
        verb,
        last_name,
        adr_city,
        adr_state,
        valid_to is null as is_current,
        valid_from,
        valid_to
    from versions

)

select * from final
