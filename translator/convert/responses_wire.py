"""The OpenAI Responses API's request shapes, as ``TypedDict``s: what ``responses_request`` reads.

Annotations only, as in ``wire.py``: a ``TypedDict`` is a claim about a shape, checked field by field where
it is read. Source: ``openapi.yaml`` (CreateResponse with ResponseProperties and ModelResponseProperties;
InputItem, EasyInputMessage, InputMessage, OutputMessage, FunctionToolCall, FunctionCallOutputItemParam,
ReasoningItem, ItemReferenceParam; InputTextContent, InputImageContent, InputFileContent,
OutputTextContent, RefusalContent; Tool: FunctionTool, WebSearchTool, WebSearchPreviewTool,
NamespaceToolParam; ToolChoiceParam; ResponseTextParam; Reasoning). Names follow openai-python's
(``ResponseInputTextParam``, ``FunctionToolParam``, ...). Only the fields the converter reads are listed.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Required, TypedDict

from translator.convert.wire import ReasoningEffort

# ReasoningEffort: the Responses API has one more value than Chat Completions' reasoning_effort.
ResponsesReasoningEffort = ReasoningEffort | Literal["max"]
InputRole = Literal["user", "assistant", "system", "developer"]


# --- content parts ---


class ResponseInputTextParam(TypedDict):
    type: Literal["input_text"]
    text: str


class ResponseOutputTextParam(TypedDict):
    """An assistant message's text, as the API returned it (annotations and logprobs are not read)."""

    type: Literal["output_text"]
    text: str


class ResponseOutputRefusalParam(TypedDict):
    type: Literal["refusal"]
    refusal: str


class ResponseInputImageParam(TypedDict, total=False):
    type: Required[Literal["input_image"]]
    image_url: str | None  # a data: URL or an http(s) URL
    file_id: str | None
    detail: Literal["low", "high", "auto", "original"] | None


class ResponseInputFileParam(TypedDict, total=False):
    type: Required[Literal["input_file"]]
    file_data: str | None  # base64, or a data: URL
    file_id: str | None
    file_url: str | None
    filename: str | None


ResponseTextPartParam = ResponseInputTextParam | ResponseOutputTextParam | ResponseOutputRefusalParam
ResponseInputContentParam = ResponseTextPartParam | ResponseInputImageParam | ResponseInputFileParam


# --- input items ---


class EasyInputMessageParam(TypedDict):
    """A message item: ``type`` may be left out (an item with a ``role`` is a message); ``content`` is a
    string or parts (InputMessage's for user, system and developer; OutputMessage's for assistant)."""

    type: NotRequired[Literal["message"]]
    role: InputRole
    content: str | list[ResponseInputContentParam]


class ResponseFunctionToolCallParam(TypedDict):
    type: Literal["function_call"]
    call_id: str
    name: str
    namespace: NotRequired[str]  # the namespace tool the function belongs to
    arguments: str  # JSON


class FunctionCallOutput(TypedDict):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ResponseInputContentParam]


class SummaryText(TypedDict):
    type: Literal["summary_text"]
    text: str


class ResponseReasoningItemParam(TypedDict):
    type: Literal["reasoning"]
    summary: list[SummaryText]
    encrypted_content: NotRequired[str | None]  # ours: a Claude thinking block (``reasoning.encode_block``)


class ItemReference(TypedDict):
    type: NotRequired[Literal["item_reference"]]
    id: str


ResponseInputItemParam = (
    EasyInputMessageParam
    | ResponseFunctionToolCallParam
    | FunctionCallOutput
    | ResponseReasoningItemParam
    | ItemReference
)


# --- tools and tool_choice ---


class FunctionToolParam(TypedDict):
    """FunctionTool: flat, unlike Chat Completions' ``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    name: str
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


class WebSearchUserLocation(TypedDict, total=False):
    type: Literal["approximate"]
    city: str | None
    region: str | None
    country: str | None
    timezone: str | None


class WebSearchFilters(TypedDict, total=False):
    allowed_domains: list[str] | None


WebSearchToolType = Literal[
    "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"
]


class WebSearchToolParam(TypedDict, total=False):
    """WebSearchTool and WebSearchPreviewTool (``web_search_preview``: no filters)."""

    type: Required[WebSearchToolType]
    user_location: WebSearchUserLocation | None
    filters: WebSearchFilters | None
    search_context_size: Literal["low", "medium", "high"]
    external_web_access: bool


class NamespaceToolParam(TypedDict):
    """Function tools grouped under a name (Codex sends its sub-agent tools as one); a call names both."""

    type: Literal["namespace"]
    name: str
    description: str
    tools: list[FunctionToolParam | dict[str, Any]]  # functions, or custom tools


class ToolChoiceFunctionParam(TypedDict):
    type: Literal["function"]
    name: str


class ToolChoiceAllowedParam(TypedDict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]  # tool references: {"type": "function", "name": ...}, {"type": "web_search"}


class ToolChoiceTypesParam(TypedDict):
    """A hosted tool: only the web search ones have a Claude equivalent."""

    type: str


ToolChoiceParam = (
    Literal["auto", "none", "required"] | ToolChoiceFunctionParam | ToolChoiceAllowedParam | ToolChoiceTypesParam
)


# --- text and reasoning ---


class ResponseFormatTextJSONSchemaConfigParam(TypedDict):
    """``text.format`` json_schema: flat, unlike Chat Completions' ``response_format.json_schema``."""

    type: Literal["json_schema"]
    name: str
    schema: dict[str, Any]
    description: NotRequired[str]
    strict: NotRequired[bool | None]


class ResponseTextConfigParam(TypedDict, total=False):
    format: dict[str, Any]  # {"type": "text"}, {"type": "json_object"} or the json_schema config
    verbosity: Literal["low", "medium", "high"] | None


class ReasoningParam(TypedDict, total=False):
    effort: ResponsesReasoningEffort | None
    summary: Literal["auto", "concise", "detailed"] | None
    generate_summary: Literal["auto", "concise", "detailed"] | None  # deprecated for summary


# --- the request (CreateResponse) ---


class ResponseCreateParams(TypedDict, total=False):
    """The fields ``responses_policy.MAPPED`` names (those it ignores are left out: nothing reads them)."""

    model: Required[str]
    input: str | list[ResponseInputItemParam]
    instructions: str | None
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    top_k: int | None  # not OpenAI's: Claude's, as on the chat route
    stream: bool | None
    tools: list[dict[str, Any]]  # FunctionToolParam, WebSearchToolParam, NamespaceToolParam, or one we ignore
    tool_choice: ToolChoiceParam
    parallel_tool_calls: bool | None
    text: ResponseTextConfigParam
    reasoning: ReasoningParam | None
    user: str
    safety_identifier: str | None
    previous_response_id: str | None  # the route's: it passes the stored items as ``history``
    store: bool | None  # the route's
    include: list[str] | None
    stream_options: dict[str, Any] | None
    background: bool | None
    conversation: str | dict[str, Any] | None
    prompt: dict[str, Any] | None
    top_logprobs: int | None
    truncation: Literal["auto", "disabled"] | None
