{#- The attribution results the runner wrote back from the IHC API: per
    conversion, each journey session's share, from the conversion's latest
    answer. Typed by the runner. Elsewhere a --force rerun replaces the older
    answer in the raw table; on Spark (append-only Parquet) it lands beside it,
    and the ranking below keeps the newer. -#}
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

ranked as (

    select
        *,
        dense_rank() over (
            partition by conv_id
            order by received_at desc, run_id desc
        ) as answer_rank
    from source

),

final as (

    select
        conv_id,
        session_id,
        run_id,
        ihc,
        initializer,
        holder,
        closer,
        received_at
    from ranked
    where answer_rank = 1

)

select * from final
