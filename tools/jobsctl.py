"""What an operator does outside the jobs API, against DATABASE_URL or the embedded database.

jobsctl.py migrate                         apply pending migrations
jobsctl.py device add TENANT DEVICE        register a device; prints its token
jobsctl.py device import TENANT < ids      register many (one id a line); prints device_id,token
jobsctl.py group add TENANT GROUP DEVICE...  create or extend a group
jobsctl.py token TENANT [--sub USER]       mint a local operator JWT (valid 12 hours)
jobsctl.py sweep [--now TIME]              run the scheduled sweep once (as if it were TIME,
                                           ISO 8601 with an offset); prints its counts

Device and group ids: 1-128 of A-Z a-z 0-9 : _ - (AWS IoT's thing name rule). Errors are one
line on standard error, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime

import psycopg

from jobs_core.domain import devices, groups
from jobs_core.domain.sweep import sweep
from jobs_core.errors import DatabaseUnavailable, JobsError
from jobs_core.store.db import Database
from jobs_core.store.migrate import migrate
from jobs_local import devjwt
from jobs_local.devdb import database_url, exit_on_signals


def _database(url: str) -> Database:
    return Database(lambda refresh: url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jobsctl.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending migrations")
    device = commands.add_parser("device", help="register devices").add_subparsers(dest="action", required=True)
    add = device.add_parser("add", help="register one device; prints its provision token")
    add.add_argument("tenant")
    add.add_argument("device")
    imp = device.add_parser("import", help="register the device ids on standard input, one a line")
    imp.add_argument("tenant")
    group = commands.add_parser("group", help="device groups").add_subparsers(dest="action", required=True)
    gadd = group.add_parser("add", help="create a group or add devices to it")
    gadd.add_argument("tenant")
    gadd.add_argument("group")
    gadd.add_argument("devices", nargs="+")
    token = commands.add_parser("token", help="mint a local operator JWT")
    token.add_argument("tenant")
    token.add_argument("--sub", default="local-operator")
    swp = commands.add_parser("sweep", help="run the scheduled sweep once")
    swp.add_argument("--now", type=moment, help="run as if it were this time (ISO 8601 with an offset)")
    args = parser.parse_args(argv)
    exit_on_signals()  # the embedded database, if this command started it, stops with it

    if args.command == "token":
        print(devjwt.mint(args.tenant, args.sub, tenant_claim=os.environ.get("TENANT_CLAIM", "tenant_id")))
        return 0

    try:
        return run(args)
    except JobsError as exc:
        return fail(exc.message)
    except UnicodeDecodeError:
        return fail("standard input is not UTF-8 text")
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        return fail(f"the database is unreachable ({type(exc.__cause__ or exc).__name__}); is DATABASE_URL right?")
    except psycopg.errors.UniqueViolation as exc:  # registered meanwhile by someone else
        return fail(f"already registered: {exc.diag.message_detail or 'a device or token'}")
    except psycopg.Error as exc:
        return fail(f"the database refused it: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def run(args: argparse.Namespace) -> int:
    url = database_url()
    os.environ["DATABASE_URL"] = url  # what the layer's settings read
    if args.command == "migrate":
        applied = migrate(url)
        print(f"applied: {', '.join(applied)}" if applied else "nothing to apply", file=sys.stderr)
    elif args.command == "device" and args.action == "add":
        print(devices.register(_database(url), args.tenant, [args.device])[args.device])
    elif args.command == "device" and args.action == "import":
        ids = [line.strip() for line in sys.stdin.buffer.read().decode().splitlines() if line.strip()]
        for device_id, device_token in devices.register(_database(url), args.tenant, ids).items():
            print(f"{device_id},{device_token}")
    elif args.command == "group":
        added = groups.add_to_group(_database(url), args.tenant, args.group, args.devices)
        print(f"group {args.group}: {added} device(s) added", file=sys.stderr)
    elif args.command == "sweep":
        result = sweep(_database(url), now=args.now)
        print(json.dumps({"timed_out": result.timed_out, "completed": result.completed}))
        rollouts = {"started": result.started, "released": result.released, "ended": result.ended}
        rollouts |= {"aborted": result.aborted, "stopped": result.stopped, "retried": result.retried}
        print("rollouts: " + ", ".join(f"{name} {n}" for name, n in rollouts.items()), file=sys.stderr)
    return 0


def moment(text: str) -> datetime:
    """A time as ISO 8601 with an explicit offset (2026-11-24T12:00:00+00:00, or ...Z)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the offset too (e.g. {text}+00:00)")
    return value


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
