"""Responses ``tools`` and ``tool_choice`` -> Claude ``tools`` and ``tool_choice``.

A function tool has the keys of a chat tool's ``function`` (``request.function_tool`` reads it). A
``namespace`` tool (Codex sends its sub-agent tools as one) is flattened: each of its functions becomes a
Claude tool under its own name, or ``<namespace>__<name>`` where another tool already has that name.
``ToolNames`` keeps the pairing both ways: a history's ``function_call`` that names a namespace finds its
Claude name, and the answer's ``tool_use`` gets its namespace back (``ConvertedRequest.tool_namespaces``),
which Codex needs to route the call. The hosted ``web_search`` (and ``web_search_preview``) is Claude's web
search server tool. Other tool types are left out; ``responses_policy`` lists them as ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from translator.convert.request import function_tool, web_search_tool
from translator.convert.responses_policy import WEB_SEARCH_TOOLS
from translator.convert.responses_wire import (
    NamespaceToolParam,
    ToolChoiceAllowedParam,
    ToolChoiceFunctionParam,
    WebSearchToolParam,
)
from translator.convert.tables import TOOL_CHOICE
from translator.convert.wire import ApproximateLocation, ClaudeTool, ClaudeToolChoice, WebSearchTool
from translator.errors import InvalidRequest

WEB_SEARCH = "web_search"  # the name of Claude's web search tool
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")  # outside a Claude tool name's alphabet


@dataclass(slots=True)
class ToolNames:
    """Each function's Claude name, by (namespace or None, name)."""

    claude: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def __call__(self, namespace: str | None, name: str) -> str:
        """The Claude name of a function a call or a tool choice names (a function the request does not
        offer keeps its name)."""
        return self.claude.get((namespace, name), name)

    def without_namespace(self, name: str) -> str:
        """A function named alone (a tool choice): a top-level one first, else the first namespace's."""
        if (None, name) in self.claude:
            return self.claude[(None, name)]
        return next((claude for (_, bare), claude in self.claude.items() if bare == name), name)

    def namespaced(self) -> dict[str, tuple[str, str]]:
        """Claude name -> (namespace, name), for the functions a namespace holds."""
        return {claude: (ns, name) for (ns, name), claude in self.claude.items() if ns is not None}


@dataclass(slots=True)
class Tools:
    custom: list[ClaudeTool]
    server: list[WebSearchTool]
    names: ToolNames


def convert_tools(tools: object) -> Tools:
    if tools is None:
        return Tools([], [], ToolNames())
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    functions: list[tuple[str | None, ClaudeTool]] = []
    server: list[WebSearchTool] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = _kind(tool, where)
        if kind == "function":
            functions.append((None, function_tool(tool, where)))
        elif kind == "namespace":
            functions += _namespace(tool, where)
        elif kind in WEB_SEARCH_TOOLS and not server:  # (Claude takes one tool of a name)
            server.append(_web_search(tool))
    return Tools([tool for _, tool in functions], server, _name(functions))


def _kind(tool: object, where: str) -> str:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    kind = tool.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest(f"{where}.type must be a string", param=f"{where}.type")
    return kind


def _namespace(tool: NamespaceToolParam, where: str) -> list[tuple[str | None, ClaudeTool]]:
    """A namespace's functions (its other tools, custom ones, are left out and listed as ignored)."""
    name = tool.get("name")
    inner: object = tool.get("tools")  # (each item checked: a claim, as FunctionToolParam)
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name must be a non-empty string", param=f"{where}.name")
    if not isinstance(inner, list):
        raise InvalidRequest(f"{where}.tools must be an array", param=f"{where}.tools")
    return [
        (name, function_tool(fn, f"{where}.tools[{j}]"))
        for j, fn in enumerate(inner)
        if _kind(fn, f"{where}.tools[{j}]") == "function"
    ]


def _name(functions: list[tuple[str | None, ClaudeTool]]) -> ToolNames:
    """Top-level functions keep their names; a namespace's function keeps its own unless that is taken.
    (Renames the tools in place.)"""
    taken = {tool["name"] for namespace, tool in functions if namespace is None}
    names = ToolNames()
    for namespace, tool in functions:
        original = tool["name"]
        if namespace is not None:
            tool["name"] = _free_name(original, namespace, taken)
            taken.add(tool["name"])
        names.claude[(namespace, original)] = tool["name"]
    return names


def _free_name(name: str, namespace: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    base = new = _NAME_CHARS.sub("_", f"{namespace}__{name}")
    suffix = 2
    while new in taken:
        new, suffix = f"{base}_{suffix}", suffix + 1
    return new


def _web_search(tool: WebSearchToolParam) -> WebSearchTool:
    location = tool.get("user_location")
    approximate = {k: v for k, v in location.items() if k != "type"} if isinstance(location, dict) else None
    out = web_search_tool(cast(ApproximateLocation | None, approximate))
    filters = tool.get("filters")
    domains = filters.get("allowed_domains") if isinstance(filters, dict) else None
    if isinstance(domains, list) and domains:
        out["allowed_domains"] = domains
    return out


# --- tool_choice (openapi.yaml ToolChoiceParam) ---


def tool_choice(choice: object, names: ToolNames) -> tuple[ClaudeToolChoice | None, set[str] | None]:
    """Claude's tool choice, and the names of the tools it allows (None: all of them)."""
    if choice is None:
        return None, None
    if isinstance(choice, str) and choice in TOOL_CHOICE:
        return {"type": TOOL_CHOICE[choice]}, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    chooser = _CHOOSERS.get(kind) if isinstance(kind, str) else None
    if chooser is not None:
        return chooser(choice, names)
    if isinstance(kind, str):
        raise InvalidRequest(
            f"tool_choice type {kind!r} is not supported: Claude has no such tool here",
            param="tool_choice.type",
            code="unsupported_parameter",
        )
    raise InvalidRequest("'tool_choice' must be auto, none, required, or a tool choice object", param="tool_choice")


def _function(choice: ToolChoiceFunctionParam, names: ToolNames) -> tuple[ClaudeToolChoice, None]:
    name = choice.get("name")
    if not isinstance(name, str):
        raise InvalidRequest("tool_choice.name must be a string", param="tool_choice.name")
    return {"type": "tool", "name": names.without_namespace(name)}, None


def _web_search_choice(_choice: object, _names: ToolNames) -> tuple[ClaudeToolChoice, None]:
    return {"type": "tool", "name": WEB_SEARCH}, None


def _allowed_tools(choice: ToolChoiceAllowedParam, names: ToolNames) -> tuple[ClaudeToolChoice, set[str]]:
    """A subset of the tools, the model free to use them (auto) or bound to use one (required)."""
    mode, refs = choice.get("mode"), choice.get("tools")
    if mode not in ("auto", "required"):
        raise InvalidRequest("tool_choice.mode must be auto or required", param="tool_choice.mode")
    if not isinstance(refs, list) or not all(isinstance(ref, dict) for ref in refs):
        raise InvalidRequest("tool_choice.tools must be an array of tool objects", param="tool_choice.tools")
    allowed: set[str] = set()
    for ref in refs:
        allowed |= _referenced(ref, names)
    return {"type": TOOL_CHOICE[mode]}, allowed


def _referenced(ref: dict[str, Any], names: ToolNames) -> set[str]:
    """The Claude names a tool reference stands for: a function, a whole namespace, the web search (any
    other kind names a tool that is not sent)."""
    kind, name = ref.get("type"), ref.get("name")
    if kind == "function" and isinstance(name, str):
        namespace = ref.get("namespace")
        return {names(namespace, name) if isinstance(namespace, str) else names.without_namespace(name)}
    if kind == "namespace":
        return {claude for (ns, _), claude in names.claude.items() if ns == name}
    return {WEB_SEARCH} if isinstance(kind, str) and kind in WEB_SEARCH_TOOLS else set()


_CHOOSERS: Final[dict[str, Callable[[Any, ToolNames], tuple[ClaudeToolChoice, set[str] | None]]]] = {
    "function": _function,
    "allowed_tools": _allowed_tools,
    **dict.fromkeys(WEB_SEARCH_TOOLS, _web_search_choice),
}
