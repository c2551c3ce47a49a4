"""Models function: the models app behind Mangum (buffered function URL)."""

from mangum import Mangum

from skylane.http.apps import create_models_app

app = create_models_app()
handler = Mangum(app, lifespan="off")
