with

base as (

    select * from {{ ref('base_crm__products') }}

),

final as (

    select
        load_id,
        product,
        file_position,
        month_start,
        loaded_at
    from base
    where reason is null

)

select * from final
