with

final as (

    {{ customer_analytics.valid_rows(ref('base_app__purchases'), [
        'purchase_id', 'customer_id', 'load_id', 'file_position', 'amount_usd', 'purchased_at', 'loaded_at',
        'amount_usd < 0 as is_refund',
    ]) }}

)

select * from final
