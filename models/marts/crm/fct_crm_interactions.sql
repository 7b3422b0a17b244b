with

interactions as (

    select * from {{ ref('int_crm_interactions_enriched') }}

),

final as (

    select
        cast(interaction_id as {{ dbt.type_string() }}) as interaction_id,
        cast(customer_id as bigint) as customer_id,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(topic as {{ dbt.type_string() }}) as topic,
        is_known_customer,
        cast(interaction_date as date) as interaction_date,
        cast(interaction_at as {{ dbt.type_timestamp() }}) as interaction_at
    from interactions

)

select * from final
