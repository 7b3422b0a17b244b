with

base as (

    select * from {{ ref('base_marketing__session_costs') }}

),

final as (

    select
        session_id,
        load_id,
        file_position,
        cost,
        loaded_at
    from base
    where reason is null

)

select * from final
