{#- One row per shop that store sales name (a sale without a ShopId names none):
    what its sales show. The key is the project's surrogate key over shop_id, the
    same expression fct_orders.shop_key is. -#}
with

sales as (

    select
        sale_id,
        customer_id,
        shop_id,
        amount_usd,
        is_refund,
        transacted_at
    from {{ ref('stg_store__sales') }}
    where shop_id is not null

),

shops as (

    select
        shop_id,
        count(distinct customer_id) as customers,
        sum(case when is_refund then 0 else 1 end) as sales,
        sum(case when is_refund then 1 else 0 end) as refunds,
        sum(amount_usd) as revenue_usd,
        min(transacted_at) as first_sale_at,
        max(transacted_at) as last_sale_at
    from sales
    group by shop_id

),

final as (

    select
        cast(shop_id as integer) as shop_id,
        cast(customers as integer) as customers,
        cast(sales as integer) as sales,
        cast(refunds as integer) as refunds,
        cast(revenue_usd as decimal(18, 2)) as revenue_usd,
        cast(first_sale_at as date) as first_sale_date,
        cast(last_sale_at as date) as last_sale_date,
        cast({{ customer_analytics.generate_surrogate_key(['shop_id']) }} as {{ dbt.type_string() }}) as shop_key,
        cast(first_sale_at as {{ dbt.type_timestamp() }}) as first_sale_at,
        cast(last_sale_at as {{ dbt.type_timestamp() }}) as last_sale_at
    from shops

)

select * from final
