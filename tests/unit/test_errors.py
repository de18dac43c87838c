"""The error tree's messages: an upstream's failure is told to the client without the upstream's address."""

from __future__ import annotations

import pytest

from translator.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable, without_addresses

# aiohttp's texts, as upstream.map_errors wraps them.
CASES = [
    ("upstream unavailable: ClientConnectorError: Cannot connect to host 10.1.2.3:8443 ssl:default "
     "[Connect call failed ('10.1.2.3', 8443)]",
     "upstream unavailable: ClientConnectorError: Cannot connect to host <upstream> ssl:default "
     "[Connect call failed <upstream>]"),
    ("upstream unavailable: ClientConnectorDNSError: Cannot connect to host claude.internal.corp:443 ssl:default "
     "[Name or service not known]",
     "upstream unavailable: ClientConnectorDNSError: Cannot connect to host <upstream> ssl:default "
     "[Name or service not known]"),
    ("upstream unavailable: ClientConnectorError: Cannot connect to host ::1:9 ssl:default "
     "[Connect call failed ('::1', 9, 0, 0)]",
     "upstream unavailable: ClientConnectorError: Cannot connect to host <upstream> ssl:default "
     "[Connect call failed <upstream>]"),
    ("upstream timed out: Connection timeout to host https://gw.internal:8443/v1/messages",
     "upstream timed out: Connection timeout to host <upstream>"),
    ("upstream unavailable: ClientResponseError: 400, message='Bad status line', url='http://10.0.0.7/v1/messages'",
     "upstream unavailable: ClientResponseError: 400, message='Bad status line', url='<upstream>'"),
    ("upstream unavailable: ServerDisconnectedError: Server disconnected",
     "upstream unavailable: ServerDisconnectedError: Server disconnected"),
    ("upstream timed out: Timeout on reading data from socket",
     "upstream timed out: Timeout on reading data from socket"),
]


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_addresses_are_left_out_of_what_the_client_reads(text: str, shown: str) -> None:
    assert without_addresses(text) == shown


@pytest.mark.parametrize("kind", [UpstreamUnavailable, UpstreamProtocolError, UpstreamTimeout])
def test_an_upstream_failure_keeps_its_whole_text_for_the_log(kind: type[UpstreamUnavailable]) -> None:
    text, shown = CASES[0]
    err = kind(text)
    assert (err.message, err.detail, str(err)) == (shown, text, text)
