"""Completions function: the FastAPI app that uvicorn serves behind the Lambda Web Adapter."""

from skylane.http.apps import create_completions_app

app = create_completions_app()
