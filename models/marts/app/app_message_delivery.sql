{#- Messages per messaging cycle and bucket, counted by delivery status. -#}
with

messages as (

    select
        message_bucket,
        status,
        cycle_start_date,
        cycle_end_date
    from {{ ref('stg_app__messages') }}

),

counted as (

    select
        cycle_end_date,
        message_bucket,
        min(cycle_start_date) as cycle_start_date,
        count(*) as messages,
        sum(case when status in ('queued', 'sent') then 1 else 0 end) as messages_delivered,
        sum(case when status = 'sent' then 1 else 0 end) as messages_sent,
        sum(case when status = 'queued' then 1 else 0 end) as messages_queued,
        sum(case when status = 'failed' then 1 else 0 end) as messages_failed,
        sum(case when status in ('pending', 'sending') then 1 else 0 end) as messages_pending
    from messages
    group by cycle_end_date, message_bucket

),

final as (

    select
        cast(message_bucket as {{ dbt.type_string() }}) as message_bucket,
        cast(messages as integer) as messages,
        cast(messages_delivered as integer) as messages_delivered,
        cast(messages_sent as integer) as messages_sent,
        cast(messages_queued as integer) as messages_queued,
        cast(messages_failed as integer) as messages_failed,
        cast(messages_pending as integer) as messages_pending,
        cast(cycle_start_date as date) as cycle_start_date,
        cast(cycle_end_date as date) as cycle_end_date
    from counted

)

select * from final
