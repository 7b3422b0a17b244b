with

final as (

    {{ customer_analytics.valid_rows(ref('base_marketing__conversions'), [
        'conv_id', 'user_id', 'load_id', 'file_position', 'revenue', 'converted_at', 'loaded_at',
    ]) }}

)

select * from final
