{#- One row per `runner attribute` run: its window, counts and outcome. On
    Spark (append-only Parquet) a run's end is a second row beside its start:
    the ranking keeps the finished one. Elsewhere the one row was updated. -#}
with

source as (

    select
        run_id,
        conv_type_id,
        api_url,
        status,
        message,
        journeys_selected,
        journeys_sent,
        journeys_skipped,
        conversions_written,
        conversions_rejected,
        requests,
        retries,
        start_date,
        end_date,
        started_at,
        finished_at
    from {{ source('runner', 'attribution_runs') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by run_id
            order by finished_at desc nulls last
        ) as line_rank
    from source

),

final as (

    select
        run_id,
        conv_type_id,
        api_url,
        status,
        message,
        journeys_selected,
        journeys_sent,
        journeys_skipped,
        conversions_written,
        conversions_rejected,
        requests,
        retries,
        start_date,
        end_date,
        started_at,
        finished_at
    from ranked
    where line_rank = 1

)

select * from final
