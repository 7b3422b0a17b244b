with

customers as (

    select
        customer_id,
        occupation,
        customer_type
    from {{ ref('stg_crm__customers') }}

),

final as (

    select
        cast(customer_id as bigint) as customer_id,
        cast(customer_type as {{ dbt.type_string() }}) as customer_type,
        cast(occupation as {{ dbt.type_string() }}) as occupation
    from customers

)

select * from final
