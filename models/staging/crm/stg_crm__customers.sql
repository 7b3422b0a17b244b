with

final as (

    {{ customer_analytics.valid_rows(ref('base_crm__customers'), [
        'customer_id', 'load_id', 'occupation', 'customer_type', 'file_position', 'loaded_at',
    ]) }}

)

select * from final
