"""The HTTP surface: FastAPI apps built from the skylane package."""
