with

base as (

    select * from {{ ref('base_marketing__conversions') }}

),

final as (

    select
        conv_id,
        user_id,
        load_id,
        file_position,
        revenue,
        converted_at,
        loaded_at
    from base
    where reason is null

)

select * from final
