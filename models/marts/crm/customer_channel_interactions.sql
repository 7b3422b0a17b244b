{#- One row per CRM customer, also those with no interaction: how often each
    channel of the `channels` seed was used (one column per channel), and the
    total. The columns come from the seed through channel_pivot_columns. -#}
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
        channel
    from {{ ref('int_crm_interactions_enriched') }}

),

final as (

    select
        customers.customer_id,
        {{ customer_analytics.channel_pivot_columns('interactions.channel', 'interactions.interaction_id') }}
    from customers
    left join interactions
        on customers.customer_id = interactions.customer_id
    group by customers.customer_id

)

select * from final
