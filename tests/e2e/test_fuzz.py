"""Schemathesis against /openapi.json on the local server, every route, with valid device and
operator credentials: no 5xx, and every response conforms to the schema. A bounded run here;
`make fuzz` runs longer (FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from jobs_core.domain import devices, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.store.db import Database
from jobs_local import devjwt

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Left out on purpose, with the reason:
#  - positive_data_acceptance: some valid-looking requests are refused by rules a schema cannot
#    carry (exactly one target; an opaque cursor that must be one we issued);
#  - unsupported_method: API Gateway answers an unrouted method with 404, not 405, and so do we.
EXCLUDED = "positive_data_acceptance,unsupported_method"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    base_url: str, db: Database, tenant: str, tmp_path: Path
) -> None:
    token = devices.register(db, tenant, ["fuzz-device"])["fuzz-device"]
    for job_id in ("0", "fuzz"):  # ids the generator tries first, so it reaches past 404
        jobs_create.create(db, tenant, "fuzzer", JobCreate(job_id=job_id, document_type="x", target_all=True))
    schemathesis = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{base_url}/openapi.json",
            "--header",
            f"X-Provision-Token: {token}",
            "--header",
            f"Authorization: Bearer {devjwt.mint(tenant, 'fuzzer')}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED,
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            os.environ.get("FUZZ_SEED", "20261123"),
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    summary = re.search(r"(\d+) generated.*", done.stdout)
    print(f"\nfuzz: {summary.group(0) if summary else done.stdout[-2000:]}")
    assert done.returncode == 0, done.stdout[-6000:]
