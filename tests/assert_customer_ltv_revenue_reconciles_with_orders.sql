-- Revenue is neither lost nor doubled between the resolved orders and the
-- lifetime value mart: per customer, and in total, the sums agree. Fails with one
-- row per customer whose revenue differs.
with

orders as (

    select
        customer_id,
        sum(amount_usd) as order_revenue
    from {{ ref('int_web_orders_resolved') }}
    group by customer_id

),

ltv as (

    select
        customer_id,
        total_revenue
    from {{ ref('customer_ltv') }}

),

compared as (

    select
        coalesce(orders.customer_id, ltv.customer_id) as customer_id,
        coalesce(orders.order_revenue, 0) as order_revenue,
        coalesce(ltv.total_revenue, 0) as ltv_revenue
    from orders
    full outer join ltv
        on orders.customer_id = ltv.customer_id

)

select * from compared
where order_revenue <> ltv_revenue
