"""The Dagster code location of customer_analytics (`make orchestrate`; README: "Run it
every day"): orchestration.definitions holds `defs`."""
