with

versions as (

    select * from {{ ref('int_customer_versions_merged') }}

),

final as (

    select
        cast(customer_key as {{ dbt.type_string() }}) as customer_key,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(customer_name as {{ dbt.type_string() }}) as customer_name,
        cast(city as {{ dbt.type_string() }}) as city,
        cast(state as {{ dbt.type_string() }}) as state,
        cast(source_systems as {{ dbt.type_string() }}) as source_systems,
        is_known_to_web,
        is_known_to_store,
        is_in_store_extract,
        is_current,
        cast(valid_from as {{ dbt.type_timestamp() }}) as valid_from,
        cast(valid_to as {{ dbt.type_timestamp() }}) as valid_to
    from versions

)

select * from final
