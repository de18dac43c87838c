"""The pure conversion layer: OpenAI Chat Completions and Responses <-> Claude Messages.

No I/O, no clock, no randomness, no aiohttp: data in, data out. Ids and timestamps are passed in.
"""

from translator.convert.errors import claude_error_body, openai_error_body, openai_status
from translator.convert.request import ConvertedRequest, convert_request
from translator.convert.response import convert_response, convert_responses
from translator.convert.responses_request import convert_responses_request
from translator.convert.responses_response import request_echo, response_from_message
from translator.convert.responses_stream import ResponsesStreamConverter
from translator.convert.stream import StreamConverter, StreamProtocolError
from translator.convert.usage import add_usage, openai_usage
from translator.profiles import ModelProfile

__all__ = [
    "ConvertedRequest",
    "ModelProfile",
    "ResponsesStreamConverter",
    "StreamConverter",
    "StreamProtocolError",
    "add_usage",
    "claude_error_body",
    "convert_request",
    "convert_response",
    "convert_responses",
    "convert_responses_request",
    "openai_error_body",
    "openai_status",
    "openai_usage",
    "request_echo",
    "response_from_message",
]
