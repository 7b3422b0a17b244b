with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_app__contacts')) }}

)

select * from final
