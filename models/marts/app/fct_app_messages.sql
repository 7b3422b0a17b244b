{#- The customers messaged: one row per customer and messaging cycle, as the
    outbox of `runner message` holds it (its columns typed by stg_app__messages). -#}
with

messages as (

    select
        message_id,
        customer_id,
        message_bucket,
        message_text,
        sender,
        status,
        status_reason,
        provider_message_id,
        attempts,
        is_delivered,
        cycle_start_date,
        cycle_end_date,
        created_at,
        sent_at
    from {{ ref('stg_app__messages') }}

),

final as (

    -- stg_app__messages has cast every column to the type the contract declares
    select * from messages

)

select * from final
