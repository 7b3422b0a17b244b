{#- Customer lifetime value from the web event stream. The formula
    is described in the model's YAML; the week arithmetic is the
    sunday_weeks_spanned macro. -#}
{%- set timeframe = var('ltv_timeframe') -%}
{%- if timeframe not in ['customer', 'dataset'] -%}
    {{ exceptions.raise_compiler_error(
        "var ltv_timeframe must be 'customer' or 'dataset', got '" ~ timeframe ~ "'"
    ) }}
{%- endif -%}
{%- set lifespan_years = var('ltv_lifespan_years') -%}

with

events as (

    select
        entity_key,
        customer_id,
        event_type,
        event_at
    from {{ ref('int_web_events_deduplicated') }}

),

orders as (

    select
        order_id,
        customer_id,
        amount_usd
    from {{ ref('fct_orders') }}
    where channel = 'web'

),

customer_activity as (

    select
        customer_id,
        count(distinct case when event_type = 'SITE_VISIT' then entity_key end) as site_visits,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from events
    group by customer_id

),

customer_revenue as (

    select
        customer_id,
        count(*) as orders,
        sum(amount_usd) as total_revenue
    from orders
    group by customer_id

),

dataset_span as (

    select
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from events

),

measured as (

    select
        customer_activity.customer_id,
        customer_activity.site_visits,
        customer_activity.first_event_at,
        customer_activity.last_event_at,
        coalesce(customer_revenue.orders, 0) as orders,
        coalesce(customer_revenue.total_revenue, 0) as total_revenue,
        {{ customer_analytics.sunday_weeks_spanned(
            'customer_activity.first_event_at', 'customer_activity.last_event_at'
        ) }} as weeks_active,
        {% if timeframe == 'dataset' -%}
            {{ customer_analytics.sunday_weeks_spanned(
                'dataset_span.first_event_at', 'dataset_span.last_event_at'
            ) }}
        {%- else -%}
            {{ customer_analytics.sunday_weeks_spanned(
                'customer_activity.first_event_at', 'customer_activity.last_event_at'
            ) }}
        {%- endif %} as weeks_measured
    from customer_activity
    cross join dataset_span
    left join customer_revenue
        on customer_activity.customer_id = customer_revenue.customer_id

),

valued as (

    select
        *,
        {{ customer_analytics.decimal_divide(
            'total_revenue * 52 * ' ~ lifespan_years, 'weeks_measured', 18, 2
        ) }} as ltv
    from measured

),

final as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast('{{ timeframe }}' as {{ dbt.type_string() }}) as ltv_timeframe,
        cast(row_number() over (order by ltv desc, customer_id asc) as integer) as ltv_rank,
        cast(weeks_active as integer) as weeks_active,
        cast(weeks_measured as integer) as weeks_measured,
        cast(site_visits as integer) as site_visits,
        cast(orders as integer) as orders,
        cast(total_revenue as decimal(18, 2)) as total_revenue,
        cast(case
            when site_visits > 0 then {{ customer_analytics.decimal_divide('total_revenue', 'site_visits', 18, 4) }}
        end as decimal(18, 4)) as revenue_per_visit,
        {{ customer_analytics.decimal_divide(
            'cast(site_visits as decimal(18, 0))', 'weeks_measured', 18, 4
        ) }} as visits_per_week,
        {{ customer_analytics.decimal_divide('total_revenue', 'weeks_measured', 18, 4) }} as avg_weekly_value,
        ltv,
        cast(first_event_at as {{ dbt.type_timestamp() }}) as first_event_at,
        cast(last_event_at as {{ dbt.type_timestamp() }}) as last_event_at
    from valued

)

select * from final
