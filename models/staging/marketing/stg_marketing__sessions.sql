with

final as (

    {{ customer_analytics.valid_rows(ref('base_marketing__sessions'), [
        'session_id', 'user_id', 'load_id', 'channel_name', 'holder_engagement', 'closer_engagement',
        'impression_interaction', 'file_position', 'event_date', 'session_at', 'loaded_at',
    ]) }}

)

select * from final
