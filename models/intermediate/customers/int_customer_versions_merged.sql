{#- One type-2 history per customer across the systems that know them: the web
    stream's customer history and the store's snapshot. A new version starts
    whenever either system's version changes; each version carries what both
    systems said at that moment. The rules are in the model's YAML. -#}
with

web_versions as (

    select
        customer_id,
        last_name,
        adr_city,
        adr_state,
        valid_from,
        valid_to
    from {{ ref('int_web_customers_versioned') }}

),

store_versions as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        customer_name,
        city,
        is_in_extract,
        cast(dbt_valid_from as {{ dbt.type_timestamp() }}) as valid_from,
        cast(dbt_valid_to as {{ dbt.type_timestamp() }}) as valid_to
    from {{ ref('int_store_customers_versioned') }}

),

change_points as (

    select
        customer_id,
        valid_from as changed_at
    from web_versions
    union
    select
        customer_id,
        valid_from as changed_at
    from store_versions

),

spans as (

    select
        customer_id,
        changed_at as valid_from,
        lead(changed_at) over (partition by customer_id order by changed_at) as valid_to
    from change_points

),

joined as (

    select
        spans.customer_id,
        spans.valid_from,
        spans.valid_to,
        web_versions.last_name,
        web_versions.adr_city as web_city,
        web_versions.adr_state,
        web_versions.valid_from as web_valid_from,
        store_versions.customer_name as store_name,
        store_versions.city as store_city,
        store_versions.is_in_extract,
        store_versions.valid_from as store_valid_from
    from spans
    left join web_versions
        on
            spans.customer_id = web_versions.customer_id
            and spans.valid_from >= web_versions.valid_from
            and (web_versions.valid_to is null or spans.valid_from < web_versions.valid_to)
    left join store_versions
        on
            spans.customer_id = store_versions.customer_id
            and spans.valid_from >= store_versions.valid_from
            and (store_versions.valid_to is null or spans.valid_from < store_versions.valid_to)

),

final as (

    select
        {{ customer_analytics.generate_surrogate_key(['customer_id', 'valid_from']) }} as customer_key,
        customer_id,
        coalesce(store_name, last_name) as customer_name,
        case
            when web_city is null then store_city
            when store_city is null or not is_in_extract then web_city
            when store_valid_from >= web_valid_from then store_city
            else web_city
        end as city,
        adr_state as state,
        case
            when web_valid_from is not null and store_valid_from is not null then 'store,web'
            when web_valid_from is not null then 'web'
            else 'store'
        end as source_systems,
        web_valid_from is not null as is_known_to_web,
        store_valid_from is not null as is_known_to_store,
        coalesce(is_in_extract, false) as is_in_store_extract,
        valid_to is null as is_current,
        valid_from,
        valid_to
    from joined

)

select * from final
