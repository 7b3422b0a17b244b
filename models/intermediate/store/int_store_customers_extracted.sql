{#- The store's customer base as of its latest extract, in the shape the snapshot
    historizes: every customer any extract has shown, with their values from the
    latest extract that shows them, and whether the latest extract shows them. A
    customer missing from the latest full extract therefore changes
    (is_in_extract turns false) instead of vanishing, and the snapshot dates that
    change with the extract's date, not with the time dbt runs.
    A table (one row per store customer): `runner load store-customers` builds
    it with everything upstream right before the snapshot, and the snapshot's
    joins get the true row count (as a view, PostgreSQL planned on an estimate
    of one row and nested-looped: minutes at 45,000 customers). -#}

with

customers as (

    select
        customer_id,
        customer_name,
        city,
        extract_date
    from {{ ref('stg_store__customers') }}

),

extracts as (

    -- every landed extract counts, even one whose rows were all quarantined
    select max(extract_date) as latest_extract_date
    from {{ ref('base_store__customers') }}

),

last_seen as (

    select
        *,
        row_number() over (partition by customer_id order by extract_date desc) as recency
    from customers

),

final as (

    select
        last_seen.customer_id,
        last_seen.customer_name,
        last_seen.city,
        last_seen.extract_date = extracts.latest_extract_date as is_in_extract,
        last_seen.extract_date as last_seen_extract_date,
        extracts.latest_extract_date as extract_date,
        cast(extracts.latest_extract_date as {{ dbt.type_timestamp() }}) as extract_at
    from last_seen
    cross join extracts
    where last_seen.recency = 1

)

select * from final
