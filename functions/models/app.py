"""Models function: the models app behind Mangum (buffered function URL), traced with X-Ray on Lambda."""

from mangum import Mangum

from skylane.http.apps import create_models_app
from skylane.ops.observe import lambda_handler

app = create_models_app()
handler = lambda_handler(Mangum(app, lifespan="off"))
