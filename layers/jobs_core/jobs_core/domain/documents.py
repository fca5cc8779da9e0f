"""What a job document may hold besides plain JSON: AWS IoT Jobs' placeholders.

- `${aws:iot:parameter:NAME}`: filled once, when the job is created, from its document_parameters
  (a template's document is written once and filled per job: a firmware version, a file name).
- `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY}` (and AWS's `-v2` form, which
  names the region: `https://s3.REGION.amazonaws.com/BUCKET/KEY`): kept as it is; each time a
  device reads the document it becomes a fresh presigned GET URL of that object (presign.py). The
  operator always sees the placeholder.

Placeholders may stand anywhere in a string value of the document; keys are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from jobs_core.errors import Unprocessable

PARAMETER = re.compile(r"\$\{aws:iot:parameter:([^}]*)\}")
PRESIGNED = re.compile(r"\$\{aws:iot:s3-presigned-url(?:-v2)?:([^}]*)\}")
# What a presigned placeholder must name: an S3 object by its path-style URL, the global endpoint
# or a regional one; bucket names as S3 allows them.
S3_OBJECT = re.compile(
    r"^https://s3(?:[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d))?\.amazonaws\.com"
    r"/(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^?#]+)$"
)
PARAMETER_NAME = r"^[A-Za-z0-9_-]{1,128}$"
MAX_PARAMETERS = 10
MAX_PRESIGNED = (
    10  # a URL is ~0.5-1.5 KiB: 10 pending documents stay far below Lambda's 6 MB, notify-next below 128 KiB
)
MAX_KEY_BYTES = 1024


class S3Object(NamedTuple):
    bucket: str
    key: str
    region: str | None  # None: the global endpoint's form (the service's own region)


def _strings(document: Any) -> list[str]:
    """Every string value in the document, iteratively (a deep document is bounded by its model)."""
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return found


def _mapped(document: Any, change: Callable[[str], str]) -> Any:
    """The document with `change` applied to every string value."""
    if isinstance(document, dict):
        return {key: _mapped(value, change) for key, value in document.items()}
    if isinstance(document, list):
        return [_mapped(value, change) for value in document]
    if isinstance(document, str):
        return change(document)
    return document


def parameter_names(document: dict[str, Any]) -> set[str]:
    return {match for text in _strings(document) for match in PARAMETER.findall(text)}


def check_template(document: dict[str, Any]) -> None:
    """A template's document: at most MAX_PARAMETERS parameters, each well named, and presigned
    placeholders that name S3 objects."""
    names = parameter_names(document)
    if len(names) > MAX_PARAMETERS:
        raise Unprocessable(f"a document has at most {MAX_PARAMETERS} parameters, this one {len(names)}")
    for name in sorted(names):
        if not re.match(PARAMETER_NAME, name):
            raise Unprocessable(f"parameter name {name[:64]!r}: 1-128 of [A-Za-z0-9_-]")
    s3_objects(document)


def filled(document: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The document with its parameters replaced by their values; every parameter it names must
    be given, and every one given must be named."""
    names = parameter_names(document)
    missing = sorted(names - set(parameters))
    if missing:
        raise Unprocessable(f"document_parameters: missing {', '.join(missing)[:200]}")
    unknown = sorted(set(parameters) - names)
    if unknown:
        raise Unprocessable(f"document_parameters: the document has no parameter {', '.join(unknown)[:200]}")
    if not names:
        return document
    result: dict[str, Any] = _mapped(document, lambda text: PARAMETER.sub(lambda m: parameters[m.group(1)], text))
    return result


def s3_objects(document: dict[str, Any]) -> list[S3Object]:
    """The objects the document's presigned placeholders name; 422 for one that names anything else,
    for any other `${aws:iot:...}` text (unknown, or not closed), and for over MAX_PRESIGNED of
    them. A parameter may stand for part of a URL (a template's): that URL is checked once a job
    fills it, and left out here."""
    urls = []
    for raw in _strings(document):
        if "${aws:iot:" not in raw:
            continue
        text = PARAMETER.sub("\x00", raw)
        known = {match.start() for match in PRESIGNED.finditer(text)}
        if any(start not in known for start in _starts(text, "${aws:iot:")):
            raise Unprocessable(
                "a placeholder is ${aws:iot:parameter:NAME} or ${aws:iot:s3-presigned-url:URL}, closed by }: "
                f"not {raw[:120]!r}"
            )
        urls += [(url, raw) for url in PRESIGNED.findall(text)]
    if len(urls) > MAX_PRESIGNED:
        raise Unprocessable(f"a document has at most {MAX_PRESIGNED} presigned-URL placeholders, this one {len(urls)}")
    found = []
    for url, raw in urls:
        if "\x00" in url:
            continue
        match = S3_OBJECT.match(url)
        key = match.group("key") if match else ""
        if match is None or len(key.encode()) > MAX_KEY_BYTES or any(ord(c) < 32 for c in key):
            raise Unprocessable(
                "a presigned-URL placeholder names an S3 object: ${aws:iot:s3-presigned-url:"
                f"https://s3.amazonaws.com/BUCKET/KEY}}, not {raw[:120]!r}"
            )
        found.append(S3Object(match.group("bucket"), key, match.group("region")))
    return found


def _starts(text: str, fragment: str) -> list[int]:
    starts, at = [], text.find(fragment)
    while at >= 0:
        starts.append(at)
        at = text.find(fragment, at + 1)
    return starts


@lru_cache(maxsize=4096)
def _object(url: str) -> S3Object | None:
    found = S3_OBJECT.match(url)
    return S3Object(found.group("bucket"), found.group("key"), found.group("region")) if found else None


def presigned(document: dict[str, Any], sign: Callable[[S3Object], str]) -> dict[str, Any]:
    """The document as a device reads it: each presigned placeholder replaced by sign(object)."""

    def replace(text: str) -> str:
        if "${aws:iot:s3-presigned-url" not in text:
            return text

        def url(match: re.Match[str]) -> str:
            found = _object(match.group(1))
            return match.group(0) if found is None else sign(found)  # None: a job from before these rules

        return PRESIGNED.sub(url, text)

    result: dict[str, Any] = _mapped(document, replace)
    return result
