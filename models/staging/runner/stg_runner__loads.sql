with

source as (

    select
        load_id,
        source_table,
        file_name,
        file_sha256,
        file_bytes,
        rows_landed,
        rows_unparseable,
        loaded_at
    from {{ source('runner', 'loads') }}

),

final as (

    select
        load_id,
        file_sha256,
        source_table,
        file_name,
        file_bytes,
        rows_landed,
        rows_unparseable,
        loaded_at
    from source

)

select * from final
