"""Running the service on a laptop: embedded PostgreSQL, a development JWT key, and a local
server that stands in for API Gateway (no Docker needed)."""
