with

base as (

    select * from {{ ref('base_store__sales') }}

),

final as (

    select
        sale_id,
        customer_id,
        load_id,
        product,
        shop_id,
        file_position,
        amount_usd,
        amount_usd < 0 as is_refund,
        transacted_at,
        loaded_at
    from base
    where reason is null

)

select * from final
