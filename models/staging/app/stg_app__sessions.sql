with

base as (

    select * from {{ ref('base_app__sessions') }}

),

final as (

    select
        session_id,
        customer_id,
        load_id,
        file_position,
        session_started_at,
        loaded_at
    from base
    where reason is null

)

select * from final
