{#- Valid CRM interactions with their topic: the product the company discussed
    with customers in the interaction's month (null when that month has none),
    and whether the CRM knows the customer. -#}
with

interactions as (

    select
        interaction_id,
        customer_id,
        channel,
        interaction_at
    from {{ ref('stg_crm__interactions') }}

),

products as (

    select
        product,
        month_start
    from {{ ref('stg_crm__products') }}

),

customers as (

    select customer_id
    from {{ ref('stg_crm__customers') }}

),

joined as (

    select
        interactions.interaction_id,
        interactions.customer_id,
        interactions.channel,
        interactions.interaction_at,
        products.product as topic,
        cast(interactions.interaction_at as date) as interaction_date,
        customers.customer_id is not null as is_known_customer
    from interactions
    left join products
        on cast({{ dbt.date_trunc('month', 'interactions.interaction_at') }} as date) = products.month_start
    left join customers
        on interactions.customer_id = customers.customer_id

),

final as (

    select
        interaction_id,
        customer_id,
        channel,
        topic,
        is_known_customer,
        interaction_date,
        interaction_at
    from joined

)

select * from final
