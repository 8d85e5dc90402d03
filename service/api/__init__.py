"""The REST routers, one per resource (STYLE.md rule 1)."""
