with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_marketing__conversions')) }}

)

select * from final
