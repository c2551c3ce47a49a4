"""The `skylane` command: serve the gateway locally, manage tables, keys and usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from skylane.core.settings import get_settings
    from skylane.http.apps import create_app

    settings = get_settings()
    app = create_app(settings)
    base = f"http://{'localhost' if args.host in ('0.0.0.0', '127.0.0.1') else args.host}:{args.port}"
    print(f"Skylane listening on {base}  (OpenAI base_url: {base}/v1)")
    if not settings.auth_enabled:
        print("Auth is DISABLED (SKYLANE_AUTH=disabled): any key or none is accepted, nothing is counted.")
    configured = sorted({m.provider for m in app.state.skylane.catalog.configured_models()})
    print("Configured providers:", ", ".join(configured) if configured else "none (set e.g. OPENAI_API_KEY)")
    print(f"Try: curl -N {base}/v1/chat/completions -H 'content-type: application/json' "
          "-H 'authorization: Bearer $SKYLANE_KEY' "
          "-d '{\"model\": \"openai/gpt-4o-mini\", \"stream\": true, "
          "\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'")
    sys.stdout.flush()
    # the same server options as the completions function (functions/completions/run.sh)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                loop="uvloop", http="skylane.http.protocol:HttpProtocol")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skylane", description="Skylane, an OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the gateway (completions and models) with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4200)
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=_serve)
    try:
        from skylane.cli.keys import register
    except ImportError:
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
