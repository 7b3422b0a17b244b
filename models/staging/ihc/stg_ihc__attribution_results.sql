{#- The attribution results the runner wrote back from the IHC API: per
    conversion, each journey session's share. Typed by the runner; as landed. -#}
with

source as (

    select
        conv_id,
        session_id,
        run_id,
        ihc,
        initializer,
        holder,
        closer,
        received_at
    from {{ source('ihc', 'customer_journey') }}

),

final as (

    select * from source

)

select * from final
