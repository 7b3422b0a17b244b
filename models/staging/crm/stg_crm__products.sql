with

final as (

    {{ customer_analytics.valid_rows(ref('base_crm__products'), [
        'load_id', 'product', 'file_position', 'month_start', 'loaded_at',
    ]) }}

)

select * from final
