"""Completions function: the Starlette app that uvicorn serves behind the Lambda Web Adapter (run.sh)."""

from skylane.http.apps import create_completions_app
from skylane.ops.observe import RequestContextMiddleware

app = create_completions_app()
# the adapter passes the invocation's trace id and request id as headers: into every log line
app.add_middleware(RequestContextMiddleware)
