{#- Every row of every store sales file, typed, with the reason it cannot be used
    (null when valid). Exact duplicates (the same typed values, in any file) count
    once: the first landed is kept, the others are quarantined as duplicate_row. -#}
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
        customerid,
        product,
        salesamount,
        shopid,
        transactiondate,
        loaded_at
    from {{ source('raw', 'store_sales') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(customerid), '') as customer_id_text,
        nullif(trim(product), '') as product_name,
        nullif(trim(salesamount), '') as amount_text,
        nullif(trim(shopid), '') as shop_id_text,
        nullif(trim(transactiondate), '') as transaction_date_text
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
            when {{ customer_analytics.regexp_like('amount_text', '^-?[0-9]{1,13}([.][0-9]{1,2})?$') }}
                then cast(amount_text as decimal(18, 2))
        end as amount_usd,
        case
            when {{ customer_analytics.regexp_like('shop_id_text', '^[0-9]{1,9}$') }}
                then cast(shop_id_text as integer)
        end as shop_id,
        {{ customer_analytics.parse_iso_timestamp(
            "case when " ~ customer_analytics.regexp_like('transaction_date_text', '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')
            ~ " then transaction_date_text || ' 00:00:00' else transaction_date_text end"
        ) }} as transacted_at
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when customer_id_text is null then 'missing_customer_id'
            when customer_id is null then 'unparseable_customer_id'
            when amount_text is null then 'missing_amount'
            when amount_usd is null then 'unparseable_amount'
            when transaction_date_text is null then 'missing_transaction_date'
            when transacted_at is null then 'unparseable_transaction_date'
            when shop_id_text is not null and shop_id is null then 'unparseable_shop_id'
        end as row_problem,
        {{ customer_analytics.generate_surrogate_key([
            'customer_id', 'product_name', 'amount_usd', 'shop_id', 'transacted_at',
        ]) }} as sale_id
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('sale_id') }}

),

final as (

    select
        sale_id,
        load_id,
        file_name,
        file_position,
        customer_id,
        product_name as product,
        shop_id,
        amount_usd,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_row'
        end as reason,
        case row_problem
            when 'malformed_line' then parse_error
            when 'missing_customer_id' then 'CustomerID is blank'
            when 'unparseable_customer_id' then 'CustomerID is not a whole number: ' || customer_id_text
            when 'missing_amount' then 'SalesAmount is blank'
            when 'unparseable_amount' then 'SalesAmount is not a decimal with at most 2 places: ' || amount_text
            when 'missing_transaction_date' then 'TransactionDate is blank'
            when 'unparseable_transaction_date'
                then 'TransactionDate is not a date or ISO-8601 date-time: ' || transaction_date_text
            when 'unparseable_shop_id' then 'ShopId is not a whole number: ' || shop_id_text
            else case when occurrence > 1 then 'the same sale landed earlier' end
        end as reason_detail,
        transacted_at,
        loaded_at
    from ranked

)

select * from final
