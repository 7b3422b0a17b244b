with

base as (

    select * from {{ ref('base_store__customers') }}

),

final as (

    select
        customer_id,
        load_id,
        customer_name,
        city,
        file_position,
        extract_date,
        loaded_at
    from base
    where reason is null

)

select * from final
