{#- Every row of every CRM interaction export, typed, with the reason it is not
    used. Date Start is DD/MM/YYYY HH:MM (seconds optional), taken as UTC. The same
    interaction (customer, channel, minute) landed twice counts once. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        date_start,
        event,
        customers,
        loaded_at
    from {{ source('raw', 'crm_interactions') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(date_start), '') as date_start_text,
        nullif(trim(event), '') as channel,
        nullif(trim(customers), '') as customer_id_text
    from source

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        case
            when {{ customer_analytics.regexp_like('customer_id_text', '^[0-9]{1,18}$') }}
                then cast(customer_id_text as bigint)
        end as customer_id,
        case
            when {{ customer_analytics.regexp_like(
                'date_start_text', '^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}(:[0-9]{2})?$'
            ) }}
                then {{ customer_analytics.parse_iso_timestamp(
                    "substr(date_start_text, 7, 4) || '-' || substr(date_start_text, 4, 2) || '-'"
                    ~ " || substr(date_start_text, 1, 2) || ' ' || substr(date_start_text, 12, 5)"
                    ~ " || coalesce(substr(date_start_text, 17, 3), '') || case when length(date_start_text) = 16 then ':00' else '' end"
                ) }}
        end as interaction_at
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when date_start_text is null then 'missing_date_start'
            when interaction_at is null then 'unparseable_date_start'
            when channel is null then 'missing_channel'
            when customer_id_text is null then 'missing_customer_id'
            when customer_id is null then 'unparseable_customer_id'
        end as row_problem,
        {{ customer_analytics.generate_surrogate_key(['customer_id', 'channel', 'interaction_at']) }}
            as interaction_id
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('interaction_id') }}

),

final as (

    select
        interaction_id,
        load_id,
        file_name,
        file_position,
        customer_id,
        channel,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_row'
        end as reason,
        case row_problem
            when 'malformed_line' then parse_error
            when 'missing_date_start' then 'Date Start is blank'
            when 'unparseable_date_start' then 'Date Start is not DD/MM/YYYY HH:MM: ' || date_start_text
            when 'missing_channel' then 'the channel (Interaction) is blank'
            when 'missing_customer_id' then 'Customers is blank'
            when 'unparseable_customer_id' then 'Customers is not a whole number: ' || customer_id_text
            else case when occurrence > 1 then 'the same interaction landed earlier' end
        end as reason_detail,
        interaction_at,
        loaded_at
    from ranked

)

select * from final
