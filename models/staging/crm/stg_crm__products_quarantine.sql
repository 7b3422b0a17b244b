with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_crm__products')) }}

)

select * from final
