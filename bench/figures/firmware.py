"""25. Firmware delivery, each against a baseline of the same run, in a tenant of its own:

25. a device's poll (GET /device/v1/jobs/pending through the warm handler) with 10 pending
    documents, each holding a presigned-URL placeholder signed for the device, against a device
    whose 10 pending documents are the same with a plain URL, in turn; and the same poll with
    every URL signed anew (none signed earlier in the same second to reuse);
    and creating a job for 100,000 devices from a template with two parameters (read, filled,
    checked) against creating it from a plain body holding the same filled document, in turn.

Signing is for a local S3 endpoint with a fixed key (local computation either way: no S3 call)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.container import handler_call
from bench.dataset import Dataset, device_id, register_fleet, token
from bench.harness import Figure, interleaved, ms, p50_ratio
from jobs_core.domain import jobs_create, presign, templates
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.templates import TemplateCreate
from jobs_core.settings import settings

TENANT = "firmware"
PENDING = 10
PLACEHOLDER = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/sensor/fw-%s.bin}"


@contextmanager
def signing() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        {"S3_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "secret"}
    )
    settings.cache_clear()
    presign.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        settings.cache_clear()
        presign.reset()


def document(version: str, presigned: bool) -> dict[str, str]:
    url = PLACEHOLDER % version if presigned else f"https://firmware.example.com/sensor/fw-{version}.bin"
    return {"version": version, "url": url, "sha256": "0" * 64, "size": "1048576"}


def run(data: Dataset) -> list[Figure]:
    fleet = 5_000 if data.quick else 100_000
    register_fleet(data.admin, TENANT, fleet)
    data.admin.execute("VACUUM ANALYZE device_state, device_tokens")
    with signing():
        return [*poll(data), create_from_template(data, fleet)]


def poll(data: Dataset) -> list[Figure]:
    for k in range(PENDING):
        for i, presigned in ((0, True), (1, False)):
            request = JobCreate(
                job_id=f"{'signed' if presigned else 'plain'}-{k}",
                document_type="firmware",
                document_params=document(f"2.{k}", presigned),
                target_device_id=device_id(i),
            )
            jobs_create.create(data.db, TENANT, "bench", request)
    signed = handler_call("GET", "/device/v1/jobs/pending", token(TENANT, 0))
    plain = handler_call("GET", "/device/v1/jobs/pending", token(TENANT, 1))
    body = str(signed())
    assert body.count("X-Amz-Signature") == PENDING, body[:500]

    def signed_anew() -> object:
        presign._signed.cache_clear()  # no URL of this second to reuse: all 10 signed in this call
        return signed()

    took = interleaved({"signed": signed, "plain": plain, "anew": signed_anew}, data.reps)
    return [
        Figure(
            f"25. a device's poll with {PENDING} pending documents, each with a presigned URL signed for it",
            ms(took["signed"]),
            f"the same {PENDING} documents with plain URLs: {ms(took['plain'])}",
            p50_ratio(took["signed"], took["plain"]),
            "<= 1.2",
        ),
        Figure(
            f"25. the same poll, its {PENDING} URLs signed anew (the first read of each in its second)",
            ms(took["anew"]),
            f"the same {PENDING} documents with plain URLs: {ms(took['plain'])}",
            p50_ratio(took["anew"], took["plain"]),
            "report",
        ),
    ]


def create_from_template(data: Dataset, fleet: int) -> Figure:
    params = {"version": "${aws:iot:parameter:version}", "url": PLACEHOLDER % "${aws:iot:parameter:version}",
              "sha256": "${aws:iot:parameter:sha256}", "size": "1048576"}  # fmt: skip
    templates.create(
        data.db,
        TENANT,
        TemplateCreate(template_id="sensor-firmware", document_type="firmware", document_params=params,
                       timeout_minutes=30),
    )  # fmt: skip
    kinds = {
        "template": lambda j: JobCreate(
            job_id=j,
            template_id="sensor-firmware",
            document_parameters={"version": "3.0", "sha256": "0" * 64},
            target_all=True,
        ),
        "plain": lambda j: JobCreate(
            job_id=j, document_type="firmware", document_params=document("3.0", True), timeout_minutes=30,
            target_all=True,
        ),
    }  # fmt: skip
    took: dict[str, list[float]] = {kind: [] for kind in kinds}
    for i in range(2 if data.quick else 3):
        for kind in list(kinds)[i % 2 :] + list(kinds)[: i % 2]:
            t0 = time.perf_counter()
            created = jobs_create.create(data.db, TENANT, "bench", kinds[kind](f"all-{kind}-{i}"))
            took[kind].append(time.perf_counter() - t0)
            assert created.execution_count == fleet, created
    from_template, plain = (statistics.median(took[kind]) * 1000 for kind in kinds)
    return Figure(
        f"25. create a job for {fleet:,} devices from a template with 2 parameters, median of {len(took['plain'])}",
        f"{from_template:,.0f} ms",
        f"the same job from a plain body: {plain:,.0f} ms",
        from_template / plain,
        "<= 1.1",
    )
