{#- The app messaging outbox as the runner keeps it (one row per customer and
    cycle), typed; is_delivered for the queued and sent messages. -#}
with

messages as (

    select
        message_id,
        customer_id,
        message_bucket,
        message_text,
        template_file,
        sender,
        status,
        status_reason,
        provider_message_id,
        attempts,
        cycle_start_date,
        cycle_end_date,
        created_at,
        sent_at,
        updated_at
    from {{ source('app', 'messages') }}

),

final as (

    select
        cast(message_id as {{ dbt.type_string() }}) as message_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(message_bucket as {{ dbt.type_string() }}) as message_bucket,
        cast(message_text as {{ dbt.type_string() }}) as message_text,
        cast(template_file as {{ dbt.type_string() }}) as template_file,
        cast(sender as {{ dbt.type_string() }}) as sender,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(status_reason as {{ dbt.type_string() }}) as status_reason,
        cast(provider_message_id as {{ dbt.type_string() }}) as provider_message_id,
        cast(attempts as integer) as attempts,
        status in ('queued', 'sent') as is_delivered,
        cast(cycle_start_date as date) as cycle_start_date,
        cast(cycle_end_date as date) as cycle_end_date,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(sent_at as {{ dbt.type_timestamp() }}) as sent_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at
    from messages

)

select * from final
