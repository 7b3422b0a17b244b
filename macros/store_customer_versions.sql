{#- The store customers' type-2 history (model int_store_customers_versioned): one
    row per version, with the columns of the snapshot store_customers_snapshot. -#}
{% macro store_customer_versions() -%}
    {{ return(adapter.dispatch('store_customer_versions', 'customer_analytics')()) }}
{%- endmacro %}

{#- DuckDB, PostgreSQL: the snapshot's versions, which `runner load store-customers`
    takes as each extract lands. -#}
{% macro default__store_customer_versions() -%}
with

final as (

    select
        customer_id,
        customer_name,
        city,
        is_in_extract,
        last_seen_extract_date,
        extract_date,
        extract_at,
        dbt_scd_id,
        dbt_updated_at,
        dbt_valid_from,
        dbt_valid_to
    from {{ ref('store_customers_snapshot') }}

)

select * from final
{%- endmacro %}

{#- Spark (no snapshots without Delta Lake): the same versions rebuilt from every
    landed extract. For each extract, the customer base as int_store_customers_extracted
    gave it when that extract was the latest (the values of the latest extract up to
    it that lists the customer, and whether it does); a version starts at the first
    extract that shows the customer and at each extract whose name, city or
    is_in_extract differ from the previous one's, dated with the extract's date, as
    the snapshot's check strategy (updated_at: extract_at) dates it. The columns the
    snapshot does not compare keep the values of the extract that started the version. -#}
{% macro spark__store_customer_versions() -%}
{%- set by_customer = 'partition by customer_id order by extract_date' -%}
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
    select distinct extract_date
    from {{ ref('base_store__customers') }}

),

as_of_extract as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.city,
        customers.extract_date = extracts.extract_date as is_in_extract,
        customers.extract_date as last_seen_extract_date,
        extracts.extract_date,
        row_number() over (
            partition by extracts.extract_date, customers.customer_id
            order by customers.extract_date desc
        ) as recency
    from extracts
    inner join customers
        on customers.extract_date <= extracts.extract_date

),

compared as (

    select
        *,
        lag(customer_name) over ({{ by_customer }}) as previous_name,
        lag(city) over ({{ by_customer }}) as previous_city,
        lag(is_in_extract) over ({{ by_customer }}) as previous_is_in_extract
    from as_of_extract
    where recency = 1

),

changed as (

    select
        customer_id,
        customer_name,
        city,
        is_in_extract,
        last_seen_extract_date,
        extract_date,
        cast(extract_date as {{ dbt.type_timestamp() }}) as extract_at
    from compared
    where
        previous_is_in_extract is null
        or previous_is_in_extract <> is_in_extract
        or not coalesce(previous_name = customer_name, previous_name is null and customer_name is null)
        or not coalesce(previous_city = city, previous_city is null and city is null)

),

final as (

    select
        customer_id,
        customer_name,
        city,
        is_in_extract,
        last_seen_extract_date,
        extract_date,
        extract_at,
        {{ snapshot_hash_arguments(['customer_id', 'extract_at']) }} as dbt_scd_id,
        extract_at as dbt_updated_at,
        extract_at as dbt_valid_from,
        lead(extract_at) over ({{ by_customer }}) as dbt_valid_to
    from changed

)

select * from final
{%- endmacro %}
