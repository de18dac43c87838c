"""The aiohttp server: app assembly, middleware, and one module per route family."""

from translator.server.app import create_app, runner_kwargs
from translator.server.protocol import ProxyRunner

__all__ = ["ProxyRunner", "create_app", "runner_kwargs"]
