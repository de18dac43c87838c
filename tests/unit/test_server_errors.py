"""aiohttp's parser errors as ours: each names its cause and quotes nothing of the request, whichever parser
(aiohttp's C one, or its Python one where the extension is missing) raised it."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_protocol import RequestPayloadError

from translator.errors import HeadersTooLarge, InvalidRequest
from translator.server.errors import parse_error

KEY = "sk-ant-api03-ParseErrorSecret"

CASES = [
    (LineTooLong(f"Bearer {KEY}", 8190), HeadersTooLarge,
     "malformed HTTP request: the request line or a header is longer than the limit (server.max_header_bytes)"),
    (BadStatusLine(f"POST / {KEY}"), InvalidRequest, "malformed HTTP request: the request line is not HTTP"),
    (BadHttpMethod(KEY), InvalidRequest, "malformed HTTP request: the request line is not HTTP"),
    (InvalidURLError(f"/v1?key={KEY}"), InvalidRequest,
     "malformed HTTP request: the request target is not a valid URL"),
    (TransferEncodingError(KEY), InvalidRequest, "malformed HTTP request: the body's chunked encoding is malformed"),
    (ContentLengthError(KEY), InvalidRequest, "malformed HTTP request: the body does not match its Content-Length"),
    (InvalidHeader(f"x-api-key: {KEY}".encode()), InvalidRequest, "malformed HTTP request: invalid HTTP header"),
    (BadHttpMessage(f"Invalid header value char:\n\n  b'x-api-key: {KEY}\\x01'\n  ^"), InvalidRequest,
     "malformed HTTP request: invalid header value char"),
    (BadHttpMessage(f"Header value {KEY!r} is bad"), InvalidRequest, "malformed HTTP request"),  # a quote: no reason
    (BadHttpMessage(KEY), InvalidRequest, "malformed HTTP request"),  # one word, digits
    (BadHttpMessage("Too many headers received"), InvalidRequest, "malformed HTTP request: too many headers received"),
    (None, InvalidRequest, "malformed HTTP request"),
]


@pytest.mark.parametrize(("exc", "kind", "message"), CASES)
def test_a_parser_error_names_its_cause_and_quotes_nothing(exc, kind, message) -> None:
    err = parse_error(exc)
    assert (type(err), err.message) == (kind, message)
    assert KEY not in err.message


def test_an_error_in_a_body_is_read_from_its_cause() -> None:
    wrapped = RequestPayloadError(f"chunk size {KEY}")
    wrapped.__cause__ = TransferEncodingError(KEY)
    assert parse_error(wrapped).message == "malformed HTTP request: the body's chunked encoding is malformed"
