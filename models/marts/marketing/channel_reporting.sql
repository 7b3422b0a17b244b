{#- Cost, attributed conversions and revenue per channel and day (the session's
    event_date), for every channel-day that has sessions. Costs are summed per
    session, each session once however many journeys it sits in (no fan-out); a
    missing cost counts 0. -#}
with

sessions as (

    select
        session_id,
        channel_name,
        event_date
    from {{ ref('stg_marketing__sessions') }}

),

costs as (

    select
        session_id,
        cost
    from {{ ref('stg_marketing__session_costs') }}

),

attribution as (

    select
        conv_id,
        session_id,
        ihc
    from {{ ref('stg_ihc__attribution_results') }}

),

conversions as (

    select
        conv_id,
        revenue
    from {{ ref('stg_marketing__conversions') }}

),

session_attribution as (

    -- one row per session: its shares summed over the conversions it helped
    select
        attribution.session_id,
        sum(attribution.ihc) as ihc,
        sum(attribution.ihc * conversions.revenue) as ihc_revenue
    from attribution
    inner join conversions
        on attribution.conv_id = conversions.conv_id
    group by attribution.session_id

),

session_facts as (

    select
        sessions.channel_name,
        sessions.event_date,
        coalesce(costs.cost, 0) as cost,
        coalesce(session_attribution.ihc, 0) as ihc,
        coalesce(session_attribution.ihc_revenue, 0) as ihc_revenue
    from sessions
    left join costs
        on sessions.session_id = costs.session_id
    left join session_attribution
        on sessions.session_id = session_attribution.session_id

),

daily as (

    select
        channel_name,
        event_date,
        count(*) as sessions,
        sum(cost) as cost,
        sum(ihc) as ihc,
        sum(ihc_revenue) as ihc_revenue
    from session_facts
    group by channel_name, event_date

),

final as (

    select
        cast(channel_name as {{ dbt.type_string() }}) as channel_name,
        cast(sessions as integer) as sessions,
        cast(cost as decimal(18, 4)) as cost,
        cast(ihc as decimal(18, 6)) as ihc,
        cast(ihc_revenue as decimal(18, 4)) as ihc_revenue,
        cast(case when ihc <> 0 then cost / ihc end as decimal(18, 4)) as cpo,
        cast(case when cost <> 0 then ihc_revenue / cost end as decimal(18, 4)) as roas,
        cast(event_date as date) as event_date
    from daily

)

select * from final
