"""17-20. The fleet through the operator API, each against a baseline of the same run:

17. registering --devices devices through the import route (its handler in-process, batches of
    1,000) against a raw INSERT ... SELECT of the same rows (registry and tokens, as
    dataset.register_fleet does), in tenants of their own, in turn;
18. a device's poll (the warm handler) just after an operator rotated its token with an overlap,
    with the new token and with the old one, against the same device before the rotation;
19. a page of 100 devices by cursor, 1,000,000 deep in a tenant of 1,000,000, against the first
    page, through the list route;
20. deleting, through the DELETE route, a device with an active execution in each of 1,000 jobs
    against deleting one with none; its round trips (the counting relay) and transactions (the
    transaction id on every row it wrote)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from bench.container import handler_call, use_container_database
from bench.dataset import BIG, Dataset, device_id, new_group, register_fleet, token
from bench.harness import Figure, interleaved, ms, p50_ratio, percentile, timed
from bench.instruments import RoundTripCounter, process_cpu_s, round_trips_per_call
from jobs_core.domain import credentials, jobs_create, paging
from jobs_core.domain.fleet_models import TokenRotate
from jobs_core.domain.job_settings import JobCreate
from jobs_core.store.db import database
from jobs_local import devjwt, template
from jobs_local.invoke import Request, request

IMPORT, LISTED, DELETED = "fleet-import", "fleet-listed", "fleet-delete"
BATCH = 1000  # the import route's most
OVERLAP_MINUTES = 60
PAGE = 100


def run(data: Dataset) -> list[Figure]:
    return [import_route(data), *rotation(data), *deep_list(data), *delete(data)]


@cache
def claims(tenant: str) -> dict[str, str]:
    """An operator's claims as the JWT authorizer passes them (minted and verified for real)."""
    return devjwt.verify(devjwt.mint(tenant, "bench"))


def operator_request(tenant: str, method: str, target: str, body: Any = None) -> Request:
    """The event API Gateway sends for an operator's call, built once (API Gateway's work, not the
    container's), ready to invoke."""
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"content-type": "application/json"} if data else {}
    return request(method, target, headers=headers, body=data, claims=claims(tenant), among=template.routes())


def answered(prepared: Request, expect: int) -> dict[str, Any]:
    response = prepared.invoke()
    assert response["statusCode"] == expect, str(response)[:2000]
    return response


def count(data: Dataset, table: str, tenant: str) -> int:
    row = data.admin.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant]).fetchone()
    assert row is not None
    return int(row[0])


def backend_cpu_s(pid: int) -> float:
    return process_cpu_s(pid) or 0.0  # 0 where /proc cannot tell (another machine's PostgreSQL)


def import_route(data: Dataset) -> Figure:
    """Each try: a tenant registered through the route, batch after batch, and another by one raw
    statement; the two in turn, the first alternating from try to try. Also the CPU each spends:
    this process's (the handler's Python) and the PostgreSQL backend's."""
    n, tries = data.devices, 1 if data.quick else 3
    ours_s: list[float] = []
    raw_s: list[float] = []
    batch_ms: list[float] = []
    cpu = {"python": 0.0, "pg": 0.0, "pg raw": 0.0}
    answered(
        operator_request(f"{IMPORT}-warm", "POST", "/customer/devices/import", {"devices": [{"device_id": "w"}]}), 201
    )
    container, admin = database().connection().info.backend_pid, data.admin.info.backend_pid
    for i in range(tries):
        ours, raw = f"{IMPORT}-{i}", f"{IMPORT}-raw-{i}"
        batches = [
            operator_request(
                ours,
                "POST",
                "/customer/devices/import",
                {"devices": [{"device_id": device_id(k)} for k in range(first, min(n, first + BATCH))]},
            )
            for first in range(0, n, BATCH)
        ]
        for which in ("ours", "raw") if i % 2 == 0 else ("raw", "ours"):
            if which == "ours":
                python, pg, started = time.process_time(), backend_cpu_s(container), time.perf_counter()
                for batch in batches:
                    t0 = time.perf_counter()
                    answered(batch, 201)
                    batch_ms.append((time.perf_counter() - t0) * 1000)
                ours_s.append(time.perf_counter() - started)
                cpu["python"] += time.process_time() - python
                cpu["pg"] += backend_cpu_s(container) - pg
            else:
                pg, started = backend_cpu_s(admin), time.perf_counter()
                register_fleet(data.admin, raw, n)
                raw_s.append(time.perf_counter() - started)
                cpu["pg raw"] += backend_cpu_s(admin) - pg
        for tenant in (ours, raw):
            assert count(data, "device_state", tenant) == n and count(data, "device_tokens", tenant) == n
    took, base = statistics.median(ours_s), statistics.median(raw_s)
    of = f", median of {tries}" if tries > 1 else ""
    return Figure(
        f"17. register {n:,} devices through the import route, {len(batch_ms) // tries} batches of {BATCH:,}{of}",
        f"{took * 1000:,.0f} ms (a batch: p50 {percentile(batch_ms, 50):.1f} ms); CPU a try: Python "
        f"{cpu['python'] / tries * 1000:,.0f} ms, PostgreSQL {cpu['pg'] / tries * 1000:,.0f} ms",
        f"raw INSERT ... SELECT of the same rows (registry, tokens): {base * 1000:,.0f} ms; PostgreSQL CPU "
        f"{cpu['pg raw'] / tries * 1000:,.0f} ms",
        took / base,
        "<= 1.5",
    )


def rotation(data: Dataset) -> list[Figure]:
    """One device of the big tenant, in rounds: polls with its one token (before); a rotation with
    an overlap; polls with the new token and with the old one, in turn (after); a rotation without
    an overlap, which leaves it one token again for the next round's 'before'."""
    i = data.take(1)[0]
    me, current = device_id(i), token(BIG, i)
    rounds, per_block = (5, 20) if data.quick else (100, 20)

    def poll(device_token: str) -> Callable[[], object]:
        return handler_call("GET", "/device/v1/jobs/pending", device_token)

    samples: dict[str, list[float]] = {"before": [], "new": [], "old": []}
    for _ in range(rounds):
        samples["before"] += timed(poll(current), per_block, warmup=2)
        issued = credentials.rotate(data.db, BIG, me, TokenRotate(previous_valid_minutes=OVERLAP_MINUTES)).token
        after = interleaved({"new": poll(issued), "old": poll(current)}, per_block, warmup=2)
        samples["new"] += after["new"]
        samples["old"] += after["old"]
        current = credentials.rotate(data.db, BIG, me, TokenRotate(previous_valid_minutes=0)).token
        # `issued`, replaced without an overlap, is refused at once: only `current` is valid
        handler_call("GET", "/device/v1/jobs/pending", issued, expect=401)()
    before = samples["before"]
    return [
        Figure(
            f"18. a device poll just after a rotation ({OVERLAP_MINUTES} min overlap), {label}, "
            f"{rounds} rounds of {per_block} in turn",
            ms(samples[which]),
            f"the same device before its rotation: {ms(before)}",
            p50_ratio(samples[which], before),
            "<= 1.1",
        )
        for which, label in (("new", "with the new token"), ("old", "with the old one, in its overlap"))
    ]


def deep_list(data: Dataset) -> list[Figure]:
    """A tenant of 1,000,000 devices (a raw INSERT): the first page of GET /customer/devices and
    the page after a cursor near the end, in turn, through the route's handler."""
    total = 12_000 if data.quick else 1_000_000
    register_fleet(data.admin, LISTED, total)
    data.admin.execute("VACUUM ANALYZE device_state")
    data.admin.execute("VACUUM ANALYZE device_tokens")
    depth = total - 2 * PAGE  # a full page after it, and one more
    cursor = paging.encode_cursor(device_id(depth - 1))
    first = operator_request(LISTED, "GET", f"/customer/devices?limit={PAGE}")
    deep = operator_request(LISTED, "GET", f"/customer/devices?limit={PAGE}&cursor={cursor}")
    for prepared, start in ((first, 0), (deep, depth)):
        response = answered(prepared, 200)
        listed = [d["device_id"] for d in json.loads(response["body"])]
        assert listed == [device_id(k) for k in range(start, start + PAGE)], listed[:3]
        assert any(h.lower() == "x-next-cursor" for h in response.get("headers") or {}), response.get("headers")
    samples = interleaved({"first": lambda: answered(first, 200), "deep": lambda: answered(deep, 200)}, data.reps // 4)
    return [
        Figure(
            f"19. list {PAGE} devices by cursor, {depth:,} deep of {total:,}",
            ms(samples["deep"]),
            f"the first page: {ms(samples['first'])}",
            p50_ratio(samples["deep"], samples["first"]),
            "about 1",
        )
    ]


ONE_XID = """
SELECT count(DISTINCT xmin::text) AS xids, count(*) AS written FROM (
    SELECT xmin FROM job_executions WHERE tenant_id = %(t)s AND device_id = %(d)s AND status = 'REMOVED'
    UNION ALL
    SELECT xmin FROM jobs WHERE tenant_id = %(t)s AND job_id LIKE 'del-%%' AND status = 'COMPLETED'
) written
"""


def delete(data: Dataset) -> list[Figure]:
    """A tenant of its own: K devices in one group, 1,000 jobs for the group (each device has an
    execution in each), and devices with none. The first of the K is deleted through the counting
    relay; the next K-2 in turn with devices without executions (the jobs stay active: the others
    still have theirs); the last completes the 1,000 jobs."""
    jobs, victims = (50, 3) if data.quick else (1000, 6)
    bystanders = victims  # one to warm the route up, one for each timed victim
    register_fleet(data.admin, DELETED, victims + bystanders)
    new_group(data.admin, DELETED, "victims")
    data.admin.execute(
        "INSERT INTO device_group_members (tenant_id, group_id, device_id) SELECT %s, 'victims', unnest(%s::text[])",
        [DELETED, [device_id(k) for k in range(victims)]],
    )
    for j in range(jobs):
        job = JobCreate(job_id=f"del-{j:04d}", document_type="x", target_group_id="victims")
        assert jobs_create.create(data.db, DELETED, "bench", job).execution_count == victims
    data.admin.execute("VACUUM ANALYZE jobs, job_executions")

    def route(k: int) -> Request:
        return operator_request(DELETED, "DELETE", f"/customer/devices/{device_id(k)}")

    def deleted(k: int, removed: int) -> float:
        prepared = route(k)
        started = time.perf_counter()
        response = answered(prepared, 200)
        took = (time.perf_counter() - started) * 1000
        assert json.loads(response["body"])["removed_executions"] == removed, response
        return took

    def one_xid(k: int, completed: int) -> int:
        found = data.admin.execute(ONE_XID, {"t": DELETED, "d": device_id(k)}).fetchone()
        assert found is not None and found[1] == jobs + completed, found
        return int(found[0])

    deleted(victims, 0)  # the route's first call (its module's import) is not timed
    # Through the relay: the route's round trips, then the transaction ids on the rows it wrote.
    relay = RoundTripCounter(data.url)
    use_container_database(relay.conninfo)
    trips = round_trips_per_call(relay, {"delete": lambda: answered(route(0), 200)})["delete"]
    use_container_database(data.url)
    relay.close()
    xids = [one_xid(0, 0)]
    ours: list[float] = []
    base: list[float] = []
    for k in range(1, victims - 1):
        for which in ("ours", "base") if k % 2 else ("base", "ours"):
            if which == "ours":
                ours.append(deleted(k, jobs))
                xids.append(one_xid(k, 0))
            else:
                base.append(deleted(victims + k, 0))
    last = victims - 1
    last_ms, last_base = deleted(last, jobs), deleted(victims + last, 0)
    xids.append(one_xid(last, jobs))
    done = data.admin.execute(
        "SELECT count(*) FROM jobs WHERE tenant_id = %s AND status = 'COMPLETED'", [DELETED]
    ).fetchone()
    assert done is not None and done[0] == jobs, done
    whole = f"{trips} round trip{'s' if trips != 1 else ''}, {max(xids)} transaction" + ("s" if max(xids) != 1 else "")
    nobody = statistics.median(base)
    return [
        Figure(
            f"20. delete a device with an active execution in each of {jobs:,} jobs (they stay active), "
            f"median of {len(ours)}",
            f"{statistics.median(ours):.1f} ms; {whole}",
            f"a device with no executions: {nobody:.1f} ms",
            statistics.median(ours) / nobody,
            "report; one transaction",
        ),
        Figure(
            f"20. delete the last device with an active execution in {jobs:,} jobs (they complete)",
            f"{last_ms:.1f} ms; {xids[-1]} transaction" + ("s" if xids[-1] != 1 else ""),
            f"a device with no executions: {last_base:.1f} ms",
            last_ms / last_base,
            "report; one transaction",
        ),
    ]
