{#- Conversions with no session of their user strictly before them: they have no
    journey, are kept out of the attribution API's payload, and are counted here. -#}
with

conversions as (

    select
        conv_id,
        user_id,
        revenue,
        converted_at
    from {{ ref('stg_marketing__conversions') }}

),

journeys as (

    select distinct conv_id
    from {{ ref('int_journeys_built') }}

),

final as (

    select
        conversions.conv_id,
        conversions.user_id,
        conversions.revenue,
        conversions.converted_at
    from conversions
    left join journeys
        on conversions.conv_id = journeys.conv_id
    where journeys.conv_id is null

)

select * from final
