"""`make bench`: benchmarks on PostgreSQL. Each module in BENCHMARKS returns {figure: number}."""
