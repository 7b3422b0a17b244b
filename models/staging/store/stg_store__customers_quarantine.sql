with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_store__customers'), extra=['extract_date']) }}

)

select * from final
