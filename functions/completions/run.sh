#!/bin/bash
# Start script of the completions function: its Handler in template.yaml.
#
# On Lambda, the Lambda Web Adapter layer's wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) execs
# this script; the adapter then waits for AWS_LWA_READINESS_CHECK_PATH to answer and proxies every
# invocation to uvicorn on AWS_LWA_PORT, streaming the response (AWS_LWA_INVOKE_MODE=response_stream).
# The app knows nothing of the adapter: when Python gains native response streaming, only this
# script and the template change.
#
# Locally (what tests/integration/test_lwa_stream.py runs):  AWS_LWA_PORT=4300 functions/completions/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # /var/task/completions on Lambda
root="$(dirname "$here")"                              # /var/task (the functions/ folder)
cd "$root"

# The layer's files are in /opt/python; the runtime adds it for its own handlers, not for our process.
export PYTHONPATH="/opt/python${PYTHONPATH:+:$PYTHONPATH}"
# stdout is a pipe to CloudWatch: unbuffered, so log lines and EMF metrics leave with each request.
export PYTHONUNBUFFERED=1

# --timeout-keep-alive above the adapter's pooled-connection idle time (90 s), so the adapter, not
# uvicorn, retires idle connections; uvloop and httptools (in the layer): less CPU per request than
# asyncio + h11 (make bench measures both); skylane.http.protocol: uvicorn's httptools protocol with a
# response's head and body in one write.
exec python3 -m uvicorn completions.app:app \
  --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}" \
  --loop uvloop --http skylane.http.protocol:HttpProtocol --lifespan on \
  --timeout-keep-alive 120 --no-access-log --log-level warning
