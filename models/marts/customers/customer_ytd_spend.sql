{#- Spend per customer and calendar month, with a running total that starts again
    each January. Every month from the customer's first order to the month of
    as_of_date is present (zero when nothing was bought); orders after as_of_date
    are ignored. -#}
{%- set max_months = 1200 -%}

with

orders as (

    select
        customer_id,
        amount_usd,
        is_refund,
        ordered_date
    from {{ ref('fct_orders') }}
    where ordered_date <= {{ customer_analytics.as_of_date() }}

),

as_of as (

    select
        {{ customer_analytics.as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc('month', customer_analytics.as_of_date()) }} as date) as as_of_month

),

order_months as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'ordered_date') }} as date) as month_start,
        amount_usd,
        is_refund
    from orders

),

first_months as (

    select
        customer_id,
        min(month_start) as first_month
    from order_months
    group by customer_id

),

month_numbers as (

    {{ dbt.generate_series(max_months) }}

),

bounds as (

    select min(first_month) as first_month
    from first_months

),

calendar as (

    select
        cast({{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'bounds.first_month') }} as date)
            as month_start
    from month_numbers
    cross join bounds
    cross join as_of
    where month_numbers.generated_number - 1 <= {{ dbt.datediff('bounds.first_month', 'as_of.as_of_month', 'month') }}

),

spine as (

    select
        first_months.customer_id,
        calendar.month_start
    from first_months
    inner join calendar
        on first_months.first_month <= calendar.month_start

),

monthly as (

    select
        customer_id,
        month_start,
        sum(amount_usd) as monthly_spend,
        sum(case when is_refund then 0 else 1 end) as orders
    from order_months
    group by customer_id, month_start

),

filled as (

    select
        spine.customer_id,
        spine.month_start,
        coalesce(monthly.monthly_spend, 0) as monthly_spend,
        coalesce(monthly.orders, 0) as orders
    from spine
    left join monthly
        on
            spine.customer_id = monthly.customer_id
            and spine.month_start = monthly.month_start

),

final as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(orders as integer) as orders,
        cast(monthly_spend as decimal(18, 2)) as monthly_spend,
        cast(sum(monthly_spend) over (
            partition by customer_id, extract(year from month_start)
            order by month_start
            rows between unbounded preceding and current row
        ) as decimal(18, 2)) as ytd_spend,
        cast(month_start as date) as month_start
    from filled

)

select * from final
