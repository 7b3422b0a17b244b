with

final as (

    {{ customer_analytics.valid_rows(ref('base_app__contacts'), [
        'customer_id', 'load_id', 'phone_number', 'file_position', 'loaded_at',
    ]) }}

)

select * from final
