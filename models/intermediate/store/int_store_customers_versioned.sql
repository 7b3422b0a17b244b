{#- The store customers' type-2 history, one row per version, as the snapshot
    store_customers_snapshot keeps it: read from the snapshot on DuckDB and
    PostgreSQL, rebuilt from the landed extracts on Spark, which has no snapshots
    without Delta Lake (macro store_customer_versions). -#}

{{ customer_analytics.store_customer_versions() }}
