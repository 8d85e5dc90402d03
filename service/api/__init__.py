"""The REST routers, one per resource; the app factory only includes them."""
