"""Runner for the customer_analytics dbt project: load raw files, build, query marts."""

__version__ = "0.1.0"
