"""The aiohttp server: app assembly, middleware, and one module per route family."""

from translator.server.app import create_app, runner_kwargs

__all__ = ["create_app", "runner_kwargs"]
