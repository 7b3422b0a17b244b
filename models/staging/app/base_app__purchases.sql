{#- Every app purchase row (from CSV or JSON Lines), typed, with the reason it is
    not used. A time without a zone is UTC; amounts are USD with at most 2
    decimals (negative: a refund). The same purchase landed twice counts once. -#}
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
        customer_id as customer_id_field,
        purchased_at as purchased_at_field,
        amount,
        loaded_at
    from {{ source('raw', 'app_purchases') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(customer_id_field), '') as customer_id,
        nullif(trim(purchased_at_field), '') as purchased_at_text,
        nullif(trim(amount), '') as amount_text
    from source

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        {{ customer_analytics.parse_iso_timestamp('purchased_at_text') }} as purchased_at,
        case
            when {{ customer_analytics.regexp_like('amount_text', '^-?[0-9]{1,13}([.][0-9]{1,2})?$') }}
                then cast(amount_text as decimal(18, 2))
        end as amount_usd
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when customer_id is null then 'missing_customer_id'
            when purchased_at_text is null then 'missing_purchased_at'
            when purchased_at is null then 'unparseable_purchased_at'
            when amount_text is null then 'missing_amount'
            when amount_usd is null then 'unparseable_amount'
        end as row_problem,
        {{ customer_analytics.generate_surrogate_key(['customer_id', 'purchased_at', 'amount_usd']) }}
            as purchase_id
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('purchase_id') }}

),

final as (

    select
        purchase_id,
        load_id,
        file_name,
        file_position,
        customer_id,
        amount_usd,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_row'
        end as reason,
        case row_problem
            when 'malformed_line' then parse_error
            when 'missing_customer_id' then 'customer_id is blank'
            when 'missing_purchased_at' then 'purchased_at is blank'
            when 'unparseable_purchased_at'
                then 'purchased_at is not an ISO-8601 date-time: ' || purchased_at_text
            when 'missing_amount' then 'amount is blank'
            when 'unparseable_amount' then 'amount is not a decimal with at most 2 places: ' || amount_text
            else case when occurrence > 1 then 'the same purchase landed earlier' end
        end as reason_detail,
        purchased_at,
        loaded_at
    from ranked

)

select * from final
