{#- One row per named product: every product a store sale names, and every
    product the CRM's "products of discussion" name for a month (the channels
    that name products; web and app orders carry none). Names match exactly as
    staged (trimmed). The key is the project's surrogate key over the name, the
    same expression fct_orders.product_key is. -#}
with

sales as (

    select
        sale_id,
        customer_id,
        product,
        amount_usd,
        is_refund,
        transacted_at
    from {{ ref('stg_store__sales') }}
    where product is not null

),

discussed as (

    select
        product,
        month_start
    from {{ ref('stg_crm__products') }}

),

sold_products as (

    select
        product,
        count(distinct customer_id) as customers,
        sum(case when is_refund then 0 else 1 end) as sales,
        sum(case when is_refund then 1 else 0 end) as refunds,
        sum(amount_usd) as revenue_usd,
        min(transacted_at) as first_sale_at,
        max(transacted_at) as last_sale_at
    from sales
    group by product

),

discussed_products as (

    select
        product,
        count(distinct month_start) as months_discussed,
        min(month_start) as first_discussed_month_start,
        max(month_start) as last_discussed_month_start
    from discussed
    group by product

),

products as (

    select product from sold_products
    union
    select product from discussed_products

),

final as (

    select
        cast(products.product as {{ dbt.type_string() }}) as product,
        cast(coalesce(sold_products.customers, 0) as integer) as customers,
        cast(coalesce(sold_products.sales, 0) as integer) as sales,
        cast(coalesce(sold_products.refunds, 0) as integer) as refunds,
        cast(coalesce(sold_products.revenue_usd, 0) as decimal(18, 2)) as revenue_usd,
        cast(coalesce(discussed_products.months_discussed, 0) as integer) as months_discussed,
        cast(
            {{ customer_analytics.generate_surrogate_key(['products.product']) }} as {{ dbt.type_string() }}
        ) as product_key,
        sold_products.product is not null as is_sold_in_store,
        discussed_products.product is not null as is_discussed_in_crm,
        cast(sold_products.first_sale_at as date) as first_sale_date,
        cast(sold_products.last_sale_at as date) as last_sale_date,
        cast(discussed_products.first_discussed_month_start as date) as first_discussed_month_start,
        cast(discussed_products.last_discussed_month_start as date) as last_discussed_month_start,
        cast(sold_products.first_sale_at as {{ dbt.type_timestamp() }}) as first_sale_at,
        cast(sold_products.last_sale_at as {{ dbt.type_timestamp() }}) as last_sale_at
    from products
    left join sold_products
        on products.product = sold_products.product
    left join discussed_products
        on products.product = discussed_products.product

)

select * from final
