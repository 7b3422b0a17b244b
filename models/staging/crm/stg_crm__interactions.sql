with

base as (

    select * from {{ ref('base_crm__interactions') }}

),

final as (

    select
        interaction_id,
        customer_id,
        load_id,
        channel,
        file_position,
        interaction_at,
        loaded_at
    from base
    where reason is null

)

select * from final
