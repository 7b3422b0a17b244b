with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_crm__customers')) }}

)

select * from final
