with

final as (

    {{ customer_analytics.quarantined_rows(ref('base_app__sessions')) }}

)

select * from final
