"""The store: the PostgreSQL connection and its transactions, the versioned migrations and the SQL functions."""
