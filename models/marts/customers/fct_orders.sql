{#- One row per order from every channel. The customer_key is the customer version
    valid when the order was placed, so "city at the time of purchase" is one join
    away and stays right after a move. shop_key and product_key are the keys of
    dim_shops and dim_products (the same surrogate key expressions), null where the
    order names no shop or product (web and app orders). -#}
with

web_orders as (

    select
        'web-' || order_id as order_id,
        order_id as source_order_id,
        customer_id,
        'web' as channel,
        cast(null as {{ dbt.type_string() }}) as product,
        cast(null as integer) as shop_id,
        amount_usd,
        ordered_at
    from {{ ref('int_web_orders_resolved') }}

),

store_sales as (

    select
        'store-' || sale_id as order_id,
        sale_id as source_order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        'store' as channel,
        product,
        shop_id,
        amount_usd,
        transacted_at as ordered_at
    from {{ ref('stg_store__sales') }}

),

app_purchases as (

    select
        'app-' || purchase_id as order_id,
        purchase_id as source_order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        'app' as channel,
        cast(null as {{ dbt.type_string() }}) as product,
        cast(null as integer) as shop_id,
        amount_usd,
        purchased_at as ordered_at
    from {{ ref('stg_app__purchases') }}

),

customer_versions as (

    select
        customer_key,
        customer_id,
        valid_from,
        valid_to,
        row_number() over (partition by customer_id order by valid_from) as version_number
    from {{ ref('int_customer_versions_merged') }}

),

orders as (

    select * from web_orders
    union all
    select * from store_sales
    union all
    select * from app_purchases

),

matched as (

    select
        orders.*,
        valid_versions.customer_key as valid_customer_key,
        first_versions.customer_key as first_customer_key
    from orders
    left join customer_versions as valid_versions
        on
            orders.customer_id = valid_versions.customer_id
            and orders.ordered_at >= valid_versions.valid_from
            and (valid_versions.valid_to is null or orders.ordered_at < valid_versions.valid_to)
    left join customer_versions as first_versions
        on
            orders.customer_id = first_versions.customer_id
            and first_versions.version_number = 1

),

final as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(source_order_id as {{ dbt.type_string() }}) as source_order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(coalesce(valid_customer_key, first_customer_key) as {{ dbt.type_string() }}) as customer_key,
        cast(
            case
                when shop_id is not null then {{ customer_analytics.generate_surrogate_key(['shop_id']) }}
            end as {{ dbt.type_string() }}
        ) as shop_key,
        cast(
            case
                when product is not null then {{ customer_analytics.generate_surrogate_key(['product']) }}
            end as {{ dbt.type_string() }}
        ) as product_key,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(product as {{ dbt.type_string() }}) as product,
        cast(shop_id as integer) as shop_id,
        cast(amount_usd as decimal(18, 2)) as amount_usd,
        amount_usd < 0 as is_refund,
        valid_customer_key is null as is_late_arriving_customer,
        cast(ordered_at as date) as ordered_date,
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at
    from matched

)

select * from final
