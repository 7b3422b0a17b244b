with

base as (

    select * from {{ ref('base_marketing__conversions') }}

),

final as (

    select
        load_id,
        file_name,
        reason,
        reason_detail,
        raw_text,
        file_position,
        loaded_at
    from base
    where reason is not null

)

select * from final
