{#- The customers messaged: one row per customer and messaging cycle, as the
    outbox of `runner message` holds it. -#}
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

    select
        cast(message_id as {{ dbt.type_string() }}) as message_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(message_bucket as {{ dbt.type_string() }}) as message_bucket,
        cast(message_text as {{ dbt.type_string() }}) as message_text,
        cast(sender as {{ dbt.type_string() }}) as sender,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(status_reason as {{ dbt.type_string() }}) as status_reason,
        cast(provider_message_id as {{ dbt.type_string() }}) as provider_message_id,
        cast(attempts as integer) as attempts,
        is_delivered,
        cast(cycle_start_date as date) as cycle_start_date,
        cast(cycle_end_date as date) as cycle_end_date,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(sent_at as {{ dbt.type_timestamp() }}) as sent_at
    from messages

)

select * from final
