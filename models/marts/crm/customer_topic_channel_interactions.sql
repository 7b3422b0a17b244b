{#- The channel counts of customer_channel_interactions per customer and topic
    (the product discussed in the interaction's month; null when the month had
    none): one row per CRM customer and topic they were contacted about. -#}
-- depends_on: {{ ref('channels') }}
with

customers as (

    select customer_id
    from {{ ref('stg_crm__customers') }}

),

interactions as (

    select
        interaction_id,
        customer_id,
        channel,
        topic
    from {{ ref('int_crm_interactions_enriched') }}

),

final as (

    select
        customers.customer_id,
        interactions.topic,
        {{ customer_analytics.channel_pivot_columns('interactions.channel', 'interactions.interaction_id') }}
    from customers
    inner join interactions
        on customers.customer_id = interactions.customer_id
    group by customers.customer_id, interactions.topic

)

select * from final
