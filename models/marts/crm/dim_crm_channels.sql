with

channels as (

    select * from {{ ref('channels') }}

),

final as (

    select
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(description as {{ dbt.type_string() }}) as description,
        cast(display_order as integer) as display_order
    from channels

)

select * from final
