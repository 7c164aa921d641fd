"""Console pages: merchant workflows that admin CRUD does not fit (bulk import, stock)."""
