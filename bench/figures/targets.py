"""21-23. Targets that follow the fleet, each against a baseline of the same run, in tenants of
their own:

21. adding devices to a group through POST /customer/groups/{g}/devices (its handler in-process,
    calls of 1,000) when 1, 10 and 50 continuous jobs in progress follow the group, against the
    same adds into a group that no job follows, call after call in turn; the first 10,000 into
    empty groups, then the next 10,000 into the groups of 10,000 they made, and the 20,000 into a
    group of 100,000 members with one job (the cost of an add follows the jobs, not the group's
    size);
22. creating a job with 100 targets (90 overlapping groups and 10 devices, 100,000 distinct
    devices) against a target_all job of a tenant of exactly 100,000 devices, in turn; and the
    same 100 targets as a continuous job;
23. a device's claim, progress and finish of its execution of a continuous job against the same
    of a snapshot job (same tenant, same group, same devices), through the warm handler, in turn."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.container import handler_call
from bench.dataset import Dataset, device_id, new_group, register_fleet, token
from bench.figures.fleet import answered, operator_request
from bench.harness import Figure, ms, p50_ratio, percentile
from jobs_core.domain import groups, jobs_create
from jobs_core.domain.job_settings import JobCreate, JobTargets

ADDED, MANY, UPDATED = "targets-add", "targets-many", "targets-update"
FOLLOWERS = (1, 10, 50)  # continuous jobs following a group
RING_GROUPS, LONE_DEVICES = 90, 10  # figure 22's 100 targets


def run(data: Dataset) -> list[Figure]:
    return [*adds(data), *many_targets(data), *updates(data)]


def count(data: Dataset, sql: str, params: list[object]) -> int:
    row = data.admin.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def continuous(job_id: str, group_id: str) -> JobCreate:
    return JobCreate(job_id=job_id, document_type="x", target_group_id=group_id, target_selection="CONTINUOUS")


def adds(data: Dataset) -> list[Figure]:
    """A group for each number of followers (0, 1, 10, 50), the jobs created while it is empty
    (IN_PROGRESS, not paced: what they are given is QUEUED), and a group of `crowd` members (a raw
    INSERT, after its one job's creation) that one job follows. Then the same devices, `batch` at a
    time, into each group in turn (the first group of each turn rotating): the first `total`, then
    the next `total`."""
    total, batch, crowd = (1000, 250, 5000) if data.quick else (10_000, 1000, 100_000)
    register_fleet(data.admin, ADDED, 2 * total + crowd + 1)
    followed = {f"add-{k}": k for k in (0, *FOLLOWERS)} | {"crowded": 1}
    for group, k in followed.items():
        new_group(data.admin, ADDED, group)
        for j in range(k):
            created = jobs_create.create(data.db, ADDED, "bench", continuous(f"{group}-{j:02d}", group))
            assert created.status == "IN_PROGRESS" and created.execution_count == 0, created
    data.admin.execute(
        "INSERT INTO device_group_members (tenant_id, group_id, device_id)"
        " SELECT %s, 'crowded', 'dev-' || lpad(i::text, 7, '0') FROM generate_series(%s::integer, %s::integer) AS i",
        [ADDED, 2 * total, 2 * total + crowd - 1],
    )
    new_group(data.admin, ADDED, "warm")
    data.admin.execute("VACUUM ANALYZE jobs, job_targets, device_groups, device_group_members, device_state")
    answered(operator_request(ADDED, "POST", "/customer/groups/warm/devices", {"device_ids": [device_id(0)]}), 200)
    took: dict[tuple[str, int], list[float]] = {(group, half): [] for group in followed for half in (0, 1)}
    names, turn = list(followed), 0
    for half in (0, 1):
        for first in range(half * total, (half + 1) * total, batch):
            ids = [device_id(i) for i in range(first, first + batch)]
            for group in names[turn % len(names) :] + names[: turn % len(names)]:
                prepared = operator_request(ADDED, "POST", f"/customer/groups/{group}/devices", {"device_ids": ids})
                t0 = time.perf_counter()
                response = answered(prepared, 200)
                took[group, half].append((time.perf_counter() - t0) * 1000)
                assert json.loads(response["body"])["added"] == batch, response
            turn += 1
    for group, k in followed.items():
        given = count(
            data,
            "SELECT count(*) FROM job_executions WHERE tenant_id = %s AND job_id LIKE %s",
            [ADDED, f"{group}-%"],
        )
        assert given == k * 2 * total, (group, given)

    def sums(group: str) -> tuple[float, float]:
        return sum(took[group, 0]), sum(took[group, 1])

    calls = total // batch
    base, base_next = sums("add-0")
    out = []
    for k in FOLLOWERS:
        first_ms, next_ms = sums(f"add-{k}")
        jobs = f"{k} continuous job{'s' if k > 1 else ''}"
        out.append(
            Figure(
                f"21. add {total:,} devices to a group {jobs} follow{'' if k > 1 else 's'}, {calls} calls of {batch:,}"
                " (POST /customer/groups/{g}/devices)",
                f"{first_ms:,.0f} ms (a call: p50 {percentile(took[f'add-{k}', 0], 50):.1f} ms), {k * total:,} "
                f"executions given, {k * total / first_ms * 1000:,.0f} a second; the next {total:,}, into the group "
                f"of {total:,}: {next_ms:,.0f} ms",
                f"the same adds to a group no job follows: {base:,.0f} ms (a call: p50 "
                f"{percentile(took['add-0', 0], 50):.1f} ms); the next {total:,}: {base_next:,.0f} ms",
                first_ms / base,
                "report: grows with the jobs",
            )
        )
    most = f"add-{FOLLOWERS[-1]}"
    out.append(
        Figure(
            f"21. the next {total:,} adds, into the group of {total:,} that {FOLLOWERS[-1]} continuous jobs follow",
            f"{sums(most)[1]:,.0f} ms",
            f"the first {total:,}, into the same group empty: {sums(most)[0]:,.0f} ms",
            sums(most)[1] / sums(most)[0],
            "about 1 (not the group's size)",
        )
    )
    crowded, lone = sum(sums("crowded")), sum(sums("add-1"))
    out.append(
        Figure(
            f"21. add {2 * total:,} devices to a group of {crowd:,} members that 1 continuous job follows",
            f"{crowded:,.0f} ms",
            f"the same adds to the group that started empty, 1 job: {lone:,.0f} ms",
            crowded / lone,
            "about 1 (not the group's size)",
        )
    )
    return out


def many_targets(data: Dataset) -> list[Figure]:
    """A tenant of exactly 100,000 devices: 90 groups around a ring of 99,990 of them (group g has
    the 2,222 devices from g x 1,111 on: each device of the ring is in two groups) and the 10 others
    named by id, 100 targets whose union is every device. In turn, the first of each try rotating:
    a job for the 100 targets, one for every device of the tenant (target_all), and the 100
    targets as a continuous job."""
    size = 9_010 if data.quick else 100_000
    step = (size - LONE_DEVICES) // RING_GROUPS
    ring = RING_GROUPS * step
    register_fleet(data.admin, MANY, ring + LONE_DEVICES)
    group_ids = [f"ring-{g:02d}" for g in range(RING_GROUPS)]
    for group in group_ids:
        new_group(data.admin, MANY, group)
    data.admin.execute(
        """
        INSERT INTO device_group_members (tenant_id, group_id, device_id)
        SELECT %(t)s, 'ring-' || lpad(g::text, 2, '0'), 'dev-' || lpad(((g * %(s)s + i) %% %(r)s)::text, 7, '0')
        FROM generate_series(0, %(groups)s - 1) AS g, generate_series(0, 2 * %(s)s - 1) AS i
        """,
        {"t": MANY, "s": step, "r": ring, "groups": RING_GROUPS},
    )
    data.admin.execute("VACUUM ANALYZE device_state, device_groups, device_group_members")
    devices = ring + LONE_DEVICES
    hundred = JobTargets(device_ids=[device_id(ring + i) for i in range(LONE_DEVICES)], group_ids=group_ids)
    kinds = {
        "all": lambda j: JobCreate(job_id=j, document_type="x", target_all=True),
        "many": lambda j: JobCreate(job_id=j, document_type="x", targets=hundred),
        "many-continuous": lambda j: JobCreate(
            job_id=j, document_type="x", targets=hundred, target_selection="CONTINUOUS"
        ),
    }
    took: dict[str, list[float]] = {kind: [] for kind in kinds}
    tries = 2 if data.quick else 3
    for i in range(tries):
        order = list(kinds)[i % 3 :] + list(kinds)[: i % 3]
        for kind in order:
            request = kinds[kind](f"{kind}-{i}")
            t0 = time.perf_counter()
            created = jobs_create.create(data.db, MANY, "bench", request)
            took[kind].append(time.perf_counter() - t0)
            assert created.execution_count == devices, (kind, created)
    all_s, many_s, cont_s = (statistics.median(took[kind]) * 1000 for kind in kinds)
    what = (
        f"100 targets ({RING_GROUPS} groups of {2 * step:,}, each device in two, and {LONE_DEVICES} devices: "
        f"{devices:,} distinct)"
    )
    baseline = f"one target_all job of the {devices:,}-device tenant: {all_s:,.0f} ms"
    return [
        Figure(
            f"22. create a job with {what}, median of {tries}", f"{many_s:,.0f} ms", baseline, many_s / all_s, "<= 1.3"
        ),
        Figure(
            f"22. the same 100 targets as a continuous job (a lock a group), median of {tries}",
            f"{cont_s:,.0f} ms",
            baseline,
            cont_s / all_s,
            "report",
        ),
    ]


def updates(data: Dataset) -> list[Figure]:
    """A tenant of --devices devices; a group, a continuous job following it from empty, its
    members added (the executions given by the adds), then a snapshot job of the group. Each device
    claims, reports progress and finishes in both jobs, each step in turn (the first job
    alternating); one member never does, so the snapshot job stays in progress."""
    n, warm = (50, 5) if data.quick else (1000, 20)
    register_fleet(data.admin, UPDATED, data.devices)
    new_group(data.admin, UPDATED, "updaters")
    jobs_create.create(data.db, UPDATED, "bench", continuous("continuous", "updaters"))
    members = [device_id(i) for i in range(warm + n + 1)]
    for first in range(0, len(members), 1000):
        groups.add_members(data.db, UPDATED, "updaters", members[first : first + 1000])
    snapshot = JobCreate(job_id="snapshot", document_type="x", target_group_id="updaters")
    jobs_create.create(data.db, UPDATED, "bench", snapshot)
    assert count(data, "SELECT count(*) FROM job_executions WHERE tenant_id = %s", [UPDATED]) == 2 * len(members)
    data.admin.execute("VACUUM ANALYZE job_executions")
    steps: dict[str, dict[str, Any]] = {
        "claim": {"status": "IN_PROGRESS"},
        "progress": {"status": "IN_PROGRESS", "status_details": {"p": "1"}},
        "finish": {"status": "SUCCEEDED"},
    }
    both = ("continuous", "snapshot")
    samples: dict[tuple[str, str], list[float]] = {(job, step): [] for job in both for step in steps}
    for i in range(warm + n):
        me = token(UPDATED, i)
        jobs = both if i % 2 == 0 else both[::-1]
        for step, body in steps.items():
            for job in jobs:
                call = handler_call("PUT", f"/device/v1/jobs/{job}/execution", me, body)
                t0 = time.perf_counter()
                call()
                if i >= warm:
                    samples[job, step].append((time.perf_counter() - t0) * 1000)
    running = count(data, "SELECT count(*) FROM jobs WHERE tenant_id = %s AND status = 'IN_PROGRESS'", [UPDATED])
    assert running == 2, running
    return [
        Figure(
            f"23. a device update ({step}) of its execution of a continuous job, {n:,} devices in turn "
            f"({data.devices:,}-device tenant)",
            ms(samples["continuous", step]),
            f"of a snapshot job of the same group: {ms(samples['snapshot', step])}",
            p50_ratio(samples["continuous", step], samples["snapshot", step]),
            "<= 1.1",
        )
        for step in steps
    ]
