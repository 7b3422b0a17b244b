{#- CRM interaction rows not used: those base_crm__interactions finds invalid,
    and valid ones on a channel the `channels` seed does not list
    (unknown_channel; the test no_unknown_channels warns with the channel). -#}
with

base as (

    select * from {{ ref('base_crm__interactions') }}

),

channels as (

    select channel from {{ ref('channels') }}

),

checked as (

    select
        load_id,
        file_name,
        raw_text,
        file_position,
        loaded_at,
        case
            when reason is not null then reason
            when channel not in (select channels.channel from channels) then 'unknown_channel'
        end as reason,
        case
            when reason is not null then reason_detail
            else 'channel ' || channel || ' is not in the channels seed: add it to seeds/channels.csv'
        end as reason_detail
    from base

),

final as (

    {{ customer_analytics.quarantined_rows('checked') }}

)

select * from final
