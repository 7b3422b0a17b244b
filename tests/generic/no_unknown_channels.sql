{#- Warns (severity warn: the build goes on) when a quarantine holds rows with
    reason unknown_channel: interactions on a channel the `channels` seed does not
    list. One row per channel, and, as the test runs, a warning naming each channel
    and saying to add it to seeds/channels.csv. -#}
{% test no_unknown_channels(model) %}

{%- set unknown -%}
    select
        reason_detail as problem,
        count(*) as interactions
    from {{ model }}
    where reason = 'unknown_channel'
    group by reason_detail
{%- endset -%}

{%- if execute -%}
    {%- set found = run_query(unknown ~ ' order by reason_detail') -%}
    {%- for row in found.rows -%}
        {%- do exceptions.warn(
            'CRM interactions: ' ~ row[0][:300] ~ ' (with its display order), then build '
            ~ 'again to count them: ' ~ row[1] ~ ' interactions are quarantined as '
            ~ 'unknown_channel in ' ~ model ~ '.'
        ) -%}
    {%- endfor -%}
{%- endif -%}

{{ unknown }}

{% endtest %}
