"""Stage 5, publish: the results warehouse (DuckDB by default, Redshift by URL)."""
