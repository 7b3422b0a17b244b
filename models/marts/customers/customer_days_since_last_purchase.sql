{#- Recency per current customer, including those who never bought. A purchase is
    an order that is not a refund; orders after as_of_date are ignored. -#}
with

customers as (

    select customer_id
    from {{ ref('int_customer_versions_merged') }}
    where is_current

),

purchases as (

    select
        customer_id,
        max(ordered_at) as last_purchase_at
    from {{ ref('fct_orders') }}
    where
        not is_refund
        and ordered_date <= {{ customer_analytics.as_of_date() }}
    group by customer_id

),

final as (

    select
        cast(customers.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast({{ dbt.datediff(
            'cast(purchases.last_purchase_at as date)', customer_analytics.as_of_date(), 'day'
        ) }} as integer) as days_since_last_purchase,
        purchases.last_purchase_at is not null as has_purchased,
        cast({{ customer_analytics.as_of_date() }} as date) as as_of_date,
        cast(purchases.last_purchase_at as {{ dbt.type_timestamp() }}) as last_purchase_at
    from customers
    left join purchases
        on customers.customer_id = purchases.customer_id

)

select * from final
