"""The service's HTTP API (FastAPI): push-mode ingest, sync status, admin, metrics."""
