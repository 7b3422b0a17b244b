{#- One row per `runner attribute` run: its window, counts and outcome; as landed. -#}
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

final as (

    select * from source

)

select * from final
