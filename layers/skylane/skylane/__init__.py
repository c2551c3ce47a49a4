"""Skylane: an OpenAI-compatible LLM gateway for AWS Lambda."""

__version__ = "0.1.0"
