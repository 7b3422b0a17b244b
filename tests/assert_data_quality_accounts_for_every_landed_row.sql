-- For every load that landed rows, its outcomes in data_quality add up to the rows
-- landed: no row is missing from the report or counted twice.
with

loads as (

    select
        load_id,
        rows_landed
    from {{ ref('stg_runner__loads') }}
    where rows_landed > 0

),

reported as (

    select
        load_id,
        sum(row_count) as rows_reported
    from {{ ref('data_quality') }}
    group by load_id

)

select
    loads.load_id,
    loads.rows_landed,
    coalesce(reported.rows_reported, 0) as rows_reported
from loads
left join reported
    on loads.load_id = reported.load_id
where loads.rows_landed <> coalesce(reported.rows_reported, 0)
