"""The HTTP surface: the ASGI apps built from the skylane package (Starlette; the admin API on FastAPI)."""
