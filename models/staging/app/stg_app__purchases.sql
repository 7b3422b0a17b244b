with

base as (

    select * from {{ ref('base_app__purchases') }}

),

final as (

    select
        purchase_id,
        customer_id,
        load_id,
        file_position,
        amount_usd,
        amount_usd < 0 as is_refund,
        purchased_at,
        loaded_at
    from base
    where reason is null

)

select * from final
