"""The sync pipeline, one module per stage: poll → normalise → store → push → reconcile."""
