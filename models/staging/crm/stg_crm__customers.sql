with

base as (

    select * from {{ ref('base_crm__customers') }}

),

final as (

    select
        customer_id,
        load_id,
        occupation,
        customer_type,
        file_position,
        loaded_at
    from base
    where reason is null

)

select * from final
