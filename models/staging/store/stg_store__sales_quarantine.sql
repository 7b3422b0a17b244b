with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_store__sales')) }}

)

select * from final
