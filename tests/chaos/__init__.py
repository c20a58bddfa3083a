"""The chaos suite: the whole system as processes, a bad portal, killed workers and a
restarted PostgreSQL, and the invariants that must hold at the end."""
