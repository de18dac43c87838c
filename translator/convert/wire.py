"""The JSON shapes of both APIs, as ``TypedDict``s: what the converters read and write.

Annotations only: nothing here checks a value at run time, and a ``TypedDict`` is a claim about a
shape, not a proof of it. Input from a client or the upstream is still checked field by field where it is
read (``isinstance``), and a converter given a bad shape must fail in its own error, never crash.

Sources, by the name each type takes in them:
- Claude: Messages API reference, ``POST /v1/messages`` (CreateMessageParams, InputMessage, Message,
  Usage, the content block and tool schemas); "Streaming Messages" (event types, content block delta
  types); "Errors" (error shapes and types). Fields newer than that copy of the reference (adaptive
  thinking, ``output_config``, strict tools, ``model_context_window_exceeded``) are marked where they stand.
- OpenAI: ``openapi.yaml`` (CreateChatCompletionRequest, ChatCompletionRequest*Message and their content
  parts, CreateChatCompletionResponse, CreateChatCompletionStreamResponse, ChatCompletionStreamResponseDelta,
  ChatCompletionMessageToolCall(Chunk), CompletionUsage, ErrorResponse).
Keys of ours that neither API has (``reasoning_content``, ``thinking_blocks``, the Claude cache counts in
``usage``) are marked too.

Names follow the SDKs': ``ChatCompletion*`` for OpenAI's (openai-python), Claude's as anthropic-sdk-python
names them, with a ``Claude`` prefix where both APIs have the thing (``ClaudeMessage``, ``ClaudeUsage``).
Request and response content blocks share one type where their shapes agree (``TextBlock``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NotRequired, Required, TypedDict

# --- Vocabularies (the value sets the tables in ``tables.py`` map between) ---

# Claude Message.stop_reason. model_context_window_exceeded is newer than the reference copy.
StopReason = Literal[
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"
]
# OpenAI choices[].finish_reason (function_call: deprecated, never sent by us).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
# Claude error.type ("Errors"; billing_error and timeout_error from the Messages API reference).
ClaudeErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
]
# OpenAI error.type, as the openai SDKs and clients know them (openapi.yaml types it only as a string).
OpenAIErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "insufficient_quota",
    "server_error",
    "timeout_error",
]
# OpenAI tool_choice as a string, and Claude's tool_choice.type.
ToolChoiceMode = Literal["auto", "none", "required"]
ClaudeToolChoiceType = Literal["auto", "any", "tool", "none"]
# OpenAI reasoning_effort, and Claude's output_config.effort (newer than the reference copy).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
Effort = Literal["low", "medium", "high", "max"]
# OpenAI Responses (openapi.yaml Response): an output item's status, the response's status, its
# incomplete_details.reason, and the ResponseErrorCode values we send (the enum is closed: the SDKs validate it).
ItemStatus = Literal["in_progress", "completed", "incomplete"]
ResponseStatus = Literal["in_progress", "completed", "incomplete", "failed"]
IncompleteReason = Literal["max_output_tokens", "content_filter"]
ResponseErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]


# --- Claude: content blocks (request and response) ---


class CacheControl(TypedDict):
    type: Literal["ephemeral"]
    ttl: NotRequired[str]


class Citation(TypedDict, total=False):
    """One citation of any location kind: web results carry ``url`` and ``title``; document locations
    (char, page, content block) carry indexes instead."""

    type: Required[str]
    cited_text: str
    url: str
    title: str | None
    document_index: int
    document_title: str | None


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str
    citations: NotRequired[list[Citation] | None]
    cache_control: NotRequired[CacheControl]


class Base64Source(TypedDict):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(TypedDict):
    type: Literal["url"]
    url: str


class PlainTextSource(TypedDict):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: str


class ImageBlock(TypedDict):
    type: Literal["image"]
    source: Base64Source | URLSource
    cache_control: NotRequired[CacheControl]


class DocumentBlock(TypedDict):
    type: Literal["document"]
    source: Base64Source | PlainTextSource | URLSource  # url: a PDF Claude fetches itself
    title: NotRequired[str]
    cache_control: NotRequired[CacheControl]


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: NotRequired[CacheControl]


class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[str | Sequence[TextBlock | ImageBlock | DocumentBlock]]
    is_error: NotRequired[bool]
    cache_control: NotRequired[CacheControl]


class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolUseBlock(TypedDict):
    """A server tool (web search, web fetch, code execution) that ran upstream."""

    type: Literal["server_tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class WebSearchToolResultBlock(TypedDict):
    """Its result, for web search (other server tools' results are block types the converters skip)."""

    type: Literal["web_search_tool_result"]
    tool_use_id: str
    content: list[dict[str, Any]] | dict[str, Any]  # the results, or an error object


# What the converters send in a message's content.
ContentBlockParam = (
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)
# What a Claude message's content holds (and block types yet to come, which the converters skip).
ContentBlock = (
    TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock | ServerToolUseBlock | WebSearchToolResultBlock
)


# --- Claude: request (CreateMessageParams) ---


class MessageParam(TypedDict):
    """InputMessage (content as blocks: the converters never send the string form; a ``Sequence``, as the
    SDK's ``Iterable``, so that a list of any kind of block fits)."""

    role: Literal["user", "assistant"]
    content: Sequence[ContentBlockParam]


class ClaudeTool(TypedDict):
    """A custom tool (``strict``: newer than the reference copy)."""

    name: str
    description: NotRequired[str]
    input_schema: dict[str, Any]
    strict: NotRequired[bool]
    cache_control: NotRequired[CacheControl]


class UserLocation(TypedDict, total=False):
    type: Required[Literal["approximate"]]
    city: str
    region: str
    country: str
    timezone: str


class WebSearchTool(TypedDict):
    type: Literal["web_search_20250305"]
    name: Literal["web_search"]
    user_location: NotRequired[UserLocation]
    allowed_domains: NotRequired[list[str]]


class ClaudeToolChoice(TypedDict):
    type: ClaudeToolChoiceType
    name: NotRequired[str]  # with type "tool"
    disable_parallel_tool_use: NotRequired[bool]


class ThinkingConfig(TypedDict):
    """``adaptive`` (with ``output_config.effort``) is newer than the reference copy."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: NotRequired[int]


class JSONSchemaFormat(TypedDict):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(TypedDict, total=False):
    """Native structured output and the effort level; newer than the reference copy."""

    format: JSONSchemaFormat
    effort: Effort


class ClaudeMetadata(TypedDict):
    user_id: str


ClaudeServiceTier = Literal["auto", "standard_only"]


class ClaudeRequest(TypedDict, total=False):
    model: Required[str]
    messages: Required[list[MessageParam]]
    max_tokens: Required[int]
    system: list[TextBlock]
    stop_sequences: list[str]
    temperature: float
    top_p: float
    top_k: int
    stream: bool
    tools: list[ClaudeTool | WebSearchTool]
    tool_choice: ClaudeToolChoice
    thinking: ThinkingConfig
    metadata: ClaudeMetadata
    output_config: OutputConfig
    service_tier: ClaudeServiceTier


# --- Claude: response (Message) and usage ---


class OutputTokensDetails(TypedDict, total=False):
    """Not in the reference copy; seen in recorded streams (tests/fixtures/claude/streams)."""

    thinking_tokens: int


class ClaudeUsage(TypedDict, total=False):
    """Usage. In ``message_delta`` (MessageDeltaUsage) every count is cumulative and any may be null."""

    input_tokens: int | None
    output_tokens: Required[int]
    cache_creation_input_tokens: int | None
    cache_read_input_tokens: int | None
    server_tool_use: dict[str, int] | None
    service_tier: str | None
    output_tokens_details: OutputTokensDetails


class ClaudeMessage(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None  # null only in message_start
    stop_sequence: str | None
    usage: ClaudeUsage


# --- Claude: stream events ("Streaming Messages") ---


class TextDelta(TypedDict):
    type: Literal["text_delta"]
    text: str


class InputJSONDelta(TypedDict):
    type: Literal["input_json_delta"]
    partial_json: str


class ThinkingDelta(TypedDict):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(TypedDict):
    type: Literal["signature_delta"]
    signature: str


class CitationsDelta(TypedDict):
    type: Literal["citations_delta"]
    citation: Citation


ContentBlockDelta = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta


class MessageStartEvent(TypedDict):
    type: Literal["message_start"]
    message: ClaudeMessage  # content empty, stop_reason null


class ContentBlockStartEvent(TypedDict):
    type: Literal["content_block_start"]
    index: int
    content_block: ContentBlock  # text and thinking empty, tool input {}


class ContentBlockDeltaEvent(TypedDict):
    type: Literal["content_block_delta"]
    index: int
    delta: ContentBlockDelta


class ContentBlockStopEvent(TypedDict):
    type: Literal["content_block_stop"]
    index: int


class MessageDelta(TypedDict):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaEvent(TypedDict):
    type: Literal["message_delta"]
    delta: MessageDelta
    usage: ClaudeUsage


class MessageStopEvent(TypedDict):
    type: Literal["message_stop"]


class PingEvent(TypedDict):
    type: Literal["ping"]


class ClaudeError(TypedDict):
    type: ClaudeErrorType
    message: str


class ErrorEvent(TypedDict):
    """An error inside a stream; the same shape as an error response body (ClaudeErrorResponse)."""

    type: Literal["error"]
    error: ClaudeError


ClaudeErrorResponse = ErrorEvent

# Every event type the reference names. "Other events": new types may come, and are to be handled gracefully.
StreamEvent = (
    MessageStartEvent
    | ContentBlockStartEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | PingEvent
    | ErrorEvent
)


# --- OpenAI: request content parts and messages ---


class ChatCompletionTextPart(TypedDict):
    type: Literal["text"]
    text: str
    cache_control: NotRequired[CacheControl]  # Claude's, sent by clients that know the upstream


class ChatCompletionRefusalPart(TypedDict):
    type: Literal["refusal"]
    refusal: str


class ImageURL(TypedDict):
    url: str
    detail: NotRequired[Literal["auto", "low", "high"]]


class ChatCompletionImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL
    cache_control: NotRequired[CacheControl]


class FileData(TypedDict, total=False):
    file_data: str  # base64, or a data: URL
    file_id: str
    filename: str


class ChatCompletionFilePart(TypedDict):
    type: Literal["file"]
    file: FileData
    cache_control: NotRequired[CacheControl]


class InputAudio(TypedDict):
    data: str
    format: str


class ChatCompletionAudioPart(TypedDict):
    type: Literal["input_audio"]
    input_audio: InputAudio


ChatCompletionContentPart = (
    ChatCompletionTextPart
    | ChatCompletionRefusalPart
    | ChatCompletionImagePart
    | ChatCompletionFilePart
    | ChatCompletionAudioPart
)


class FunctionCall(TypedDict):
    """A tool call's function, and the legacy ``function_call``: ``arguments`` is a JSON string."""

    name: str
    arguments: str


class ChatCompletionMessageToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatCompletionSystemMessage(TypedDict):
    role: Literal["system", "developer"]
    content: str | list[ChatCompletionTextPart]
    name: NotRequired[str]


class ChatCompletionUserMessage(TypedDict):
    role: Literal["user"]
    content: str | list[ChatCompletionContentPart]
    name: NotRequired[str]


class ChatCompletionAssistantMessageParam(TypedDict, total=False):
    role: Required[Literal["assistant"]]
    content: str | list[ChatCompletionTextPart | ChatCompletionRefusalPart] | None
    refusal: str | None
    tool_calls: list[ChatCompletionMessageToolCall]
    function_call: FunctionCall | None  # deprecated
    name: str
    thinking_blocks: list[ThinkingBlock | RedactedThinkingBlock]  # ours: given back as we sent them
    reasoning_content: str | None  # ours; unsigned, so not sent to Claude


class ChatCompletionToolMessage(TypedDict):
    role: Literal["tool"]
    content: str | list[ChatCompletionTextPart]
    tool_call_id: str


class ChatCompletionFunctionMessage(TypedDict):
    """Deprecated: answers the latest ``function_call`` of the same name."""

    role: Literal["function"]
    content: str | None
    name: str


ChatCompletionMessageParam = (
    ChatCompletionSystemMessage
    | ChatCompletionUserMessage
    | ChatCompletionAssistantMessageParam
    | ChatCompletionToolMessage
    | ChatCompletionFunctionMessage
)


# --- OpenAI: request (CreateChatCompletionRequest) ---


class FunctionDefinition(TypedDict):
    name: str
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


class ChatCompletionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(TypedDict):
    name: str


class ChatCompletionNamedToolChoice(TypedDict):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaSpec(TypedDict):
    name: str
    description: NotRequired[str]
    schema: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


class ResponseFormatText(TypedDict):
    type: Literal["text"]


class ResponseFormatJSONObject(TypedDict):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(TypedDict):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class ApproximateLocation(TypedDict, total=False):
    city: str
    region: str
    country: str
    timezone: str


class WebSearchLocation(TypedDict):
    type: Literal["approximate"]
    approximate: ApproximateLocation


class WebSearchOptions(TypedDict, total=False):
    user_location: WebSearchLocation | None
    search_context_size: Literal["low", "medium", "high"]


class ChatCompletionRequest(TypedDict, total=False):
    """The fields ``policy.MAPPED`` names (those it ignores are left out: nothing reads them)."""

    model: Required[str]
    messages: Required[list[ChatCompletionMessageParam]]
    max_tokens: int | None  # deprecated for max_completion_tokens
    max_completion_tokens: int | None
    stop: str | list[str] | None
    temperature: float | None
    top_p: float | None
    top_k: int | None  # not OpenAI's: Claude's, which clients aimed at Claude send
    stream: bool | None
    stream_options: StreamOptions | None
    tools: list[ChatCompletionTool]
    functions: list[FunctionDefinition]  # deprecated
    tool_choice: ToolChoiceMode | ChatCompletionNamedToolChoice
    function_call: Literal["auto", "none"] | NamedFunction  # deprecated
    parallel_tool_calls: bool
    user: str
    reasoning_effort: ReasoningEffort | None
    thinking: ThinkingConfig | None  # Claude's, as Anthropic's OpenAI SDK compatibility layer takes it
    response_format: ResponseFormat
    n: int | None
    web_search_options: WebSearchOptions
    logprobs: bool | None
    top_logprobs: int | None
    audio: dict[str, Any] | None
    modalities: list[str] | None


# --- OpenAI: response (CreateChatCompletionResponse) and usage ---


class PromptTokensDetails(TypedDict):
    cached_tokens: int  # Claude's cache_read_input_tokens
    cache_write_tokens: int  # Claude's cache_creation_input_tokens


class CompletionTokensDetails(TypedDict):
    reasoning_tokens: int  # Claude's output_tokens_details.thinking_tokens


class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: NotRequired[CompletionTokensDetails]
    cache_read_input_tokens: NotRequired[int]  # ours: Claude's counts, kept alongside
    cache_creation_input_tokens: NotRequired[int]


class URLCitationSpan(TypedDict):
    start_index: int
    end_index: int
    url: str
    title: str


class URLCitation(TypedDict):
    type: Literal["url_citation"]
    url_citation: URLCitationSpan


class ChatCompletionMessage(TypedDict):
    """ChatCompletionResponseMessage."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    annotations: NotRequired[list[URLCitation]]
    tool_calls: NotRequired[list[ChatCompletionMessageToolCall]]
    function_call: NotRequired[FunctionCall]  # the legacy form, to a request with functions only
    reasoning_content: NotRequired[str]  # ours: the thinking text
    thinking_blocks: NotRequired[list[ThinkingBlock | RedactedThinkingBlock]]  # ours: signed, to send back


class Choice(TypedDict):
    index: int
    message: ChatCompletionMessage
    logprobs: None
    finish_reason: FinishReason


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    service_tier: NotRequired[str]  # the tier that served it, when the upstream says (tables.SERVICE_TIER)
    choices: list[Choice]
    usage: CompletionUsage


# --- OpenAI: stream chunks (CreateChatCompletionStreamResponse) ---


class ChoiceDeltaFunction(TypedDict, total=False):
    name: str
    arguments: str


class ChoiceDeltaToolCall(TypedDict):
    """ChatCompletionMessageToolCallChunk: ``id``, ``type`` and ``name`` only on a call's first chunk."""

    index: int
    id: NotRequired[str]
    type: NotRequired[Literal["function"]]
    function: NotRequired[ChoiceDeltaFunction]


class ChoiceDelta(TypedDict, total=False):
    """ChatCompletionStreamResponseDelta."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[ChoiceDeltaToolCall]
    function_call: ChoiceDeltaFunction  # the legacy form, to a request with functions only
    annotations: list[URLCitation]  # as OpenAI's search models send them
    reasoning_content: str  # ours, as in ChatCompletionMessage
    thinking_blocks: list[ThinkingBlock | RedactedThinkingBlock]  # ours


class ChunkChoice(TypedDict):
    index: int
    delta: ChoiceDelta
    logprobs: None
    finish_reason: FinishReason | None


class ChatCompletionChunk(TypedDict):
    """``choices`` is empty in the usage chunk; ``usage`` is there, null in every other chunk, only with
    ``stream_options.include_usage``. A stream may also end in an error object (OpenAIErrorResponse)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    service_tier: NotRequired[str]
    choices: list[ChunkChoice]
    usage: NotRequired[CompletionUsage | None]


# --- OpenAI: errors (ErrorResponse) ---


class OpenAIError(TypedDict):
    message: str
    type: OpenAIErrorType
    param: str | None
    code: str | None


class OpenAIErrorResponse(TypedDict):
    error: OpenAIError
