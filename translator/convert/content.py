"""OpenAI content parts -> Claude content blocks (text, images, files), for both APIs' part shapes:
Chat Completions (``text``, ``image_url``, ``file``, ``input_audio``, ``refusal``) and Responses
(``input_text``, ``output_text``, ``refusal``, ``input_image``, ``input_file``).

Images: a data URL becomes a base64 source; an http(s) URL becomes a url source, which Claude fetches
itself (nothing is downloaded here; the server may inline URLs before sending, see ``server/images.py``).
Files: PDF and plain-text data become document blocks (a Responses ``file_url``, a url source). Audio
cannot be represented and is rejected; so is an OpenAI ``file_id``, which a Claude upstream cannot resolve.
Empty and whitespace-only text is dropped: Claude refuses a text block without non-whitespace text.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar, cast

from translator.convert.responses_wire import (
    ResponseInputContentParam,
    ResponseInputFileParam,
    ResponseInputImageParam,
    ResponseTextPartParam,
)
from translator.convert.wire import (
    ChatCompletionContentPart,
    ChatCompletionFilePart,
    ChatCompletionImagePart,
    ChatCompletionRefusalPart,
    ChatCompletionTextPart,
    DocumentBlock,
    FileData,
    ImageBlock,
    TextBlock,
)
from translator.errors import InvalidRequest

# What a content part becomes.
PartBlock = TextBlock | ImageBlock | DocumentBlock
_B = TypeVar("_B", TextBlock, PartBlock)

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Non-standard media types clients put in data URLs (OpenAI accepts them) -> the registered name.
MEDIA_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
DOCUMENT_TYPES = frozenset({"application/pdf", "text/plain"})
# Claude-only keys clients put on parts; kept on the block.
_PASSED_KEYS: Final[tuple[Literal["cache_control"], ...]] = ("cache_control",)


def text_blocks(content: object, where: str) -> list[TextBlock]:
    """Content that may only hold text (system, developer, assistant turns)."""
    return _content(content, where, _text_part)


def content_blocks(content: object, where: str) -> list[PartBlock]:
    """User content: text, images and files."""
    return [] if content is None else _content(content, where, _part)


def response_text_blocks(content: object, where: str) -> list[TextBlock]:
    """Responses content that may only hold text (system, developer, assistant messages)."""
    return _content(content, where, _response_text_part)


def response_content_blocks(content: object, where: str) -> list[PartBlock]:
    """Responses user content and function call outputs: text, images and files."""
    return [] if content is None else _content(content, where, _response_part)


def _content(content: object, where: str, build: Callable[[Any], _B | None]) -> list[_B]:
    """A string (one text block, none when blank) or parts, each built by ``build``."""
    if isinstance(content, str):
        return [cast(_B, {"type": "text", "text": content})] if content.strip() else []
    return _blocks(_parts(content, where), build, where)


def _blocks(parts: list[Any], build: Callable[[Any], _B | None], where: str) -> list[_B]:
    """Each part's block (None: the part carries nothing). A part's errors name their place relative to it
    (".type ..."), and get the part's own on the way out: no path string is built for parts that are fine."""
    blocks = []
    for i, part in enumerate(parts):
        try:
            block = build(part)
        except InvalidRequest as err:
            raise placed(err, f"{where}[{i}]") from err.__cause__
        if block is not None:
            blocks.append(block)
    return blocks


def placed(err: InvalidRequest, where: str) -> InvalidRequest:
    """An error that names its place relative to ``where`` -> the same error, naming it in full."""
    err.message = where + err.message
    err.detail = where + err.detail
    err.args = (err.message,)
    if err.param is not None:
        err.param = where + err.param
    return err


def _parts(content: object, where: str) -> list[Any]:
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InvalidRequest(f"{where} must be a string or an array of content parts", param=where)
    return content


# A part's builders; their errors name their place relative to the part (see _blocks).


def _part(part: ChatCompletionContentPart) -> PartBlock | None:
    kind = part.get("type")
    builder = _PART_BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise InvalidRequest(f": content part type {kind!r} is not supported", param=".type")
    block = builder(part)
    if block is not None:
        _pass_keys(part, block)
    return block


def _pass_keys(part: Mapping[str, Any], block: PartBlock) -> None:
    for key in _PASSED_KEYS:
        if key in part:
            block[key] = part[key]


def _text_part(part: ChatCompletionTextPart | ChatCompletionRefusalPart) -> TextBlock | None:
    # An assistant's earlier refusal part is text to the model.
    text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
    if part.get("type") not in ("text", "refusal") or not isinstance(text, str):
        raise InvalidRequest(" must be a text part with a string 'text'", param="")
    return _text(part, text)


def _text(part: Mapping[str, Any], text: str) -> TextBlock | None:
    if not text.strip():
        return None  # Claude rejects empty and whitespace-only text blocks; such a part carries nothing
    block: TextBlock = {"type": "text", "text": text}
    _pass_keys(part, block)
    return block


def _image_part(part: ChatCompletionImagePart) -> ImageBlock:
    spec = part.get("image_url")
    return _image(spec.get("url") if isinstance(spec, dict) else spec, ".image_url.url")


def _image(url: object, param: str) -> ImageBlock:
    if not isinstance(url, str):
        raise InvalidRequest(f"{param} must be a string", param=param)
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, param)
        if media_type not in IMAGE_TYPES:
            raise InvalidRequest(f": image type {media_type!r} is not supported (jpeg, png, gif, webp)", param=param)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(": image URL must be a data: or http(s) URL", param=param)


def _file_part(part: ChatCompletionFilePart) -> DocumentBlock:
    spec = part.get("file")
    if not isinstance(spec, dict):
        raise InvalidRequest(".file must be an object", param=".file")
    return _document(spec, ".file")


def _document(spec: FileData, where: str) -> DocumentBlock:
    """A file's inline data (``where`` names the object holding it: a chat part's ``.file``, or the part
    itself for a Responses ``input_file``)."""
    if "file_data" not in spec:
        raise InvalidRequest(
            ": only inline file_data is supported (a Claude upstream cannot resolve an OpenAI file_id)",
            param=f"{where}.file_id",
        )
    data = spec["file_data"]
    param = f"{where}.file_data"
    if not isinstance(data, str):
        raise InvalidRequest(f"{param} must be a string", param=param)
    if data.startswith("data:"):
        media_type, payload = parse_data_url(data, param)
    else:  # bare base64: a PDF's own first bytes say so; anything else is taken for text (checked below)
        media_type = "application/pdf" if data.startswith(PDF_IN_BASE64) else "text/plain"
        payload = data
    if media_type not in DOCUMENT_TYPES:
        raise InvalidRequest(
            f": file type {media_type!r} is not supported (application/pdf, text/plain)", param=param
        )
    block: DocumentBlock = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }
    if media_type == "text/plain":
        block["source"] = {"type": "text", "media_type": "text/plain", "data": _b64_text(payload, param)}
    if spec.get("filename"):
        block["title"] = spec["filename"]
    return block


def _audio_part(part: object) -> PartBlock:
    raise InvalidRequest(": audio input is not supported by Claude models", param=".input_audio")


# A part's type decides its shape: each builder takes the part its type names (a claim it checks).
_PART_BUILDERS: Final[dict[str, Callable[[Any], PartBlock | None]]] = {
    "text": _text_part,
    "refusal": _text_part,
    "image_url": _image_part,
    "file": _file_part,
    "input_audio": _audio_part,
}


# The Responses API's parts (openapi.yaml InputContent, OutputMessageContent). A text part's type names the
# key its text is under.
_RESPONSE_TEXT_KEYS: Final[dict[str, Literal["text", "refusal"]]] = {
    "input_text": "text", "output_text": "text", "refusal": "refusal"
}


def _response_text_part(part: ResponseTextPartParam) -> TextBlock | None:
    kind = part.get("type")
    key = _RESPONSE_TEXT_KEYS.get(kind) if isinstance(kind, str) else None
    text = part.get(key) if key is not None else None
    if not isinstance(text, str):
        raise InvalidRequest(" must be an input_text, output_text or refusal part with a string text", param="")
    return _text(part, text)


def _input_image(part: ResponseInputImageParam) -> ImageBlock:
    if part.get("image_url") is None and part.get("file_id") is not None:
        raise InvalidRequest(
            ": only image_url is supported (a Claude upstream cannot resolve an OpenAI file_id)", param=".file_id"
        )
    return _image(part.get("image_url"), ".image_url")


def _input_file(part: ResponseInputFileParam) -> DocumentBlock:
    spec = cast(FileData, {k: v for k, v in part.items() if v is not None})  # (the keys are FileData's)
    url = part.get("file_url")
    if "file_data" in spec or url is None:
        return _document(spec, "")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidRequest(".file_url must be an http(s) URL", param=".file_url")
    block: DocumentBlock = {"type": "document", "source": {"type": "url", "url": url}}  # Claude fetches it (PDF)
    if spec.get("filename"):
        block["title"] = spec["filename"]
    return block


def _response_part(part: ResponseInputContentParam) -> PartBlock | None:
    kind = part.get("type")
    builder = _RESPONSE_PART_BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise InvalidRequest(f": content part type {kind!r} is not supported", param=".type")
    block = builder(part)
    if block is not None:
        _pass_keys(part, block)
    return block


_RESPONSE_PART_BUILDERS: Final[dict[str, Callable[[Any], PartBlock | None]]] = {
    **dict.fromkeys(_RESPONSE_TEXT_KEYS, _response_text_part),
    "input_image": _input_image,
    "input_file": _input_file,
}


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` (RFC 2397) -> (media type, base64 data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest(f"{param} must be a base64 data URL", param=param)
    media_type = header[5:-7].split(";")[0].strip().lower()
    return MEDIA_TYPE_ALIASES.get(media_type, media_type), data


# "%PDF-", the first bytes of every PDF, in base64 (their 7th character depends on the byte after)
PDF_IN_BASE64: Final = base64.b64encode(b"%PDF-")[:6].decode()


def _b64_text(payload: str, param: str) -> str:
    try:
        return base64.b64decode(payload, validate=True).decode("utf-8")
    except ValueError as e:  # binascii.Error, non-ASCII input and UnicodeDecodeError all are ValueErrors
        raise InvalidRequest(": file data that is neither a PDF nor base64 UTF-8 text (only those two are "
                             "supported)", param=param) from e
