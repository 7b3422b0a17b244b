{#- App engagement per current customer over the trailing window of
    engagement_window_weeks weeks that ends with as_of_date (inclusive, by UTC
    date), and the message bucket it puts them in. -#}
{%- set weeks = var('engagement_window_weeks') | int -%}
{%- if weeks < 1 -%}
    {{ exceptions.raise_compiler_error("var engagement_window_weeks must be a whole number of weeks >= 1") }}
{%- endif -%}
{%- set low_spend = var('low_spend_threshold') -%}
{%- set high_activity = var('high_activity_threshold') -%}

with

customers as (

    select customer_id
    from {{ ref('int_customer_versions_merged') }}
    where is_current

),

window_bounds as (

    select
        cast({{ dbt.dateadd('day', -(7 * weeks - 1), customer_analytics.as_of_date()) }} as date) as window_start,
        {{ customer_analytics.as_of_date() }} as window_end

),

sessions as (

    select
        cast(sessions.customer_id as {{ dbt.type_string() }}) as customer_id,
        count(*) as sessions_in_window
    from {{ ref('stg_app__sessions') }} as sessions
    cross join window_bounds
    where cast(sessions.session_started_at as date) between window_bounds.window_start and window_bounds.window_end
    group by sessions.customer_id

),

purchases as (

    select
        orders.customer_id,
        sum(case when orders.is_refund then 0 else 1 end) as purchases_in_window,
        sum(orders.amount_usd) as spend_in_window
    from {{ ref('fct_orders') }} as orders
    cross join window_bounds
    where
        orders.channel = 'app'
        and orders.ordered_date between window_bounds.window_start and window_bounds.window_end
    group by orders.customer_id

),

measured as (

    select
        customers.customer_id,
        coalesce(sessions.sessions_in_window, 0) as sessions_in_window,
        coalesce(purchases.purchases_in_window, 0) as purchases_in_window,
        coalesce(purchases.spend_in_window, 0) as spend_in_window,
        cast(coalesce(sessions.sessions_in_window, 0) as decimal(18, 4)) / {{ weeks }} as avg_weekly_sessions
    from customers
    left join sessions
        on customers.customer_id = sessions.customer_id
    left join purchases
        on customers.customer_id = purchases.customer_id

),

final as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(
            case
                when spend_in_window < {{ low_spend }} then 'BOOST'
                when avg_weekly_sessions > {{ high_activity }} then 'REWARD'
                else 'NONE'
            end as {{ dbt.type_string() }}
        ) as message_bucket,
        cast(sessions_in_window as integer) as sessions_in_window,
        cast(purchases_in_window as integer) as purchases_in_window,
        cast({{ weeks }} as integer) as engagement_window_weeks,
        cast(avg_weekly_sessions as decimal(18, 4)) as avg_weekly_sessions,
        cast(spend_in_window as decimal(18, 2)) as spend_in_window,
        cast({{ low_spend }} as decimal(18, 2)) as low_spend_threshold,
        cast({{ high_activity }} as decimal(18, 4)) as high_activity_threshold,
        cast({{ customer_analytics.as_of_date() }} as date) as evaluated_at
    from measured

)

select * from final
