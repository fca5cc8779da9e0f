"""Presigned S3 GET URLs for the documents devices read: AWS Signature Version 4 in the query
string, computed here from the function's credentials (botocore's credential chain, read once per
container), with no call to S3 or to anything else per read.

Signing is a few HMACs (about 20 us a URL; botocore's generate_presigned_url costs about 370 us,
which ten placeholders in a poll would feel), and an object is signed once a second at most: a URL
names its second (X-Amz-Date), so a read within the same second gets the very URL a new signature
would make (_signed). tests/unit/test_presign.py checks that a URL is the one botocore's S3 query
signer makes for the same instant.

Where the URL points: S3_ENDPOINT_URL when set (path style: `make run`'s embedded S3, or any S3
a developer names), else S3 itself in the placeholder's region (or the service's own, for the
global form), virtual-hosted unless the bucket's name has a dot (TLS), path style then.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from jobs_core.domain import documents
from jobs_core.domain.documents import S3Object
from jobs_core.settings import settings

logger = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_EXPIRES_S = 3600


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None


_lock = threading.Lock()
_source: Any = None  # botocore's credentials object: refreshes itself when temporary ones expire


def _credentials() -> Credentials | None:
    global _source
    with _lock:
        if _source is None:
            import botocore.session  # the Lambda runtime's; imported on first use, not at cold start

            _source = botocore.session.get_session().get_credentials() or False
        source = _source
    if not source:
        return None
    frozen = source.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def reset() -> None:
    """Read the credentials again on the next signature (tests; a rotated local key)."""
    global _source
    with _lock:
        _source = None


@lru_cache(maxsize=16)
def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _where(target: S3Object, endpoint: str | None) -> tuple[str, str, str]:
    """(scheme://host, the object's path, the region to sign for)."""
    region = target.region or settings().aws_region
    key_path = quote(target.key, safe="/-_.~")
    if endpoint:  # scheme://host[:port], by its setting's rule
        return endpoint.rstrip("/"), f"/{target.bucket}/{key_path}", region
    if "." in target.bucket:
        return f"https://s3.{region}.amazonaws.com", f"/{target.bucket}/{key_path}", region
    return f"https://{target.bucket}.s3.{region}.amazonaws.com", f"/{key_path}", region


def url(target: S3Object, expires_s: int, now: datetime | None = None) -> str | None:
    """A presigned GET URL of the object, valid expires_s seconds from now; None without credentials."""
    credentials = _credentials()
    if credentials is None:
        return None
    stamp = _stamp(int((now or datetime.now(UTC)).timestamp()))
    return _signed(target, expires_s, stamp, credentials, settings().s3_endpoint_url)


@lru_cache(maxsize=2)
def _stamp(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y%m%dT%H%M%SZ")


# A fleet reading one firmware document at once signs it once a second.
@lru_cache(maxsize=4096)
def _signed(target: S3Object, expires_s: int, stamp: str, credentials: Credentials, endpoint: str | None) -> str:
    origin, path, region = _where(target, endpoint)
    scope, query = _query(credentials, region, stamp, expires_s)
    canonical = f"GET\n{path}\n{query}\nhost:{urlsplit(origin).netloc}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(_signing_key(credentials.secret_key, stamp[:8], region), to_sign.encode(), hashlib.sha256)
    return f"{origin}{path}?{query}&X-Amz-Signature={signature.hexdigest()}"


@lru_cache(maxsize=64)
def _query(credentials: Credentials, region: str, stamp: str, expires_s: int) -> tuple[str, str]:
    """The credential scope and the canonical query string, the same for every object of a second."""
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": "host",
    }
    if credentials.token:
        query["X-Amz-Security-Token"] = credentials.token
    return scope, "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))


_warned = False


def device_params(document: dict[str, Any]) -> dict[str, Any]:
    """A document's params as a device reads them (`document` as the device calls' SQL gives it:
    type, params, presign_ttl): with fresh presigned URLs when the job has placeholders."""
    global _warned
    params: dict[str, Any] = document["params"]
    ttl = document.get("presign_ttl")
    if not ttl:
        return params
    credentials = _credentials()
    if credentials is None:
        if not _warned:
            logger.error("no AWS credentials: presigned-URL placeholders are sent to devices unsigned")
            _warned = True
        return params
    stamp, endpoint = _stamp(int(time.time())), settings().s3_endpoint_url
    return documents.presigned(params, lambda target: _signed(target, ttl, stamp, credentials, endpoint))
