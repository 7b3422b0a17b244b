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

final as (

    select
        interactions.interaction_id,
        interactions.customer_id,
        interactions.channel,
        products.product as topic,
        customers.customer_id is not null as is_known_customer,
        cast(interactions.interaction_at as date) as interaction_date,
        interactions.interaction_at
    from interactions
    left join products
        on cast({{ dbt.date_trunc('month', 'interactions.interaction_at') }} as date) = products.month_start
    left join customers
        on interactions.customer_id = customers.customer_id

)

select * from final
