with

final as (

    {{ customer_analytics.valid_rows(ref('base_store__customers'), [
        'customer_id', 'load_id', 'customer_name', 'city', 'file_position', 'extract_date', 'loaded_at',
    ]) }}

)

select * from final
