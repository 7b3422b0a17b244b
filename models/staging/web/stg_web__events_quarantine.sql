with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_web__events')) }}

)

select * from final
