with

final as (

    {{ customer_analytics.valid_rows(ref('base_store__sales'), [
        'sale_id', 'customer_id', 'load_id', 'product', 'shop_id', 'file_position', 'amount_usd',
        'transacted_at', 'loaded_at', 'amount_usd < 0 as is_refund',
    ]) }}

)

select * from final
