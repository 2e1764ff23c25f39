"""Writes of the annotation app, one module per subject: projects, workers, leases (and their
PostgreSQL statements, postgres), imports, and the domain errors they raise (errors). This package
re-exports nothing: callers import from the module that owns a function."""
