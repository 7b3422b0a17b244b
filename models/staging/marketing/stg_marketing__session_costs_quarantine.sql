with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_marketing__session_costs')) }}

)

select * from final
