"""What an operator does outside the jobs API, against DATABASE_URL or the embedded database.

jobsctl.py migrate                         apply pending migrations
jobsctl.py device add TENANT DEVICE        register a device; prints its token
jobsctl.py device import TENANT < ids      register many (one id a line); prints device_id,token
jobsctl.py group add TENANT GROUP DEVICE...  create or extend a group
jobsctl.py token TENANT [--sub USER]       mint a local operator JWT
jobsctl.py sweep                           run the scheduled sweep once; prints its counts
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import psycopg

from jobs_core import devices
from jobs_core.db import Database
from jobs_core.migrate import migrate
from jobs_core.sweep import sweep
from jobs_local import devjwt
from jobs_local.devdb import database_url


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
    commands.add_parser("sweep", help="run the scheduled sweep once")
    args = parser.parse_args(argv)

    if args.command == "token":
        print(devjwt.mint(args.tenant, args.sub, tenant_claim=os.environ.get("TENANT_CLAIM", "tenant_id")))
        return 0

    url = database_url()
    os.environ["DATABASE_URL"] = url  # what the layer's settings read
    try:
        if args.command == "migrate":
            applied = migrate(url)
            print(f"applied: {', '.join(applied)}" if applied else "nothing to apply", file=sys.stderr)
        elif args.command == "device" and args.action == "add":
            print(devices.register(_database(url), args.tenant, [args.device])[args.device])
        elif args.command == "device" and args.action == "import":
            ids = [line.strip() for line in sys.stdin if line.strip()]
            for device_id, device_token in devices.register(_database(url), args.tenant, ids).items():
                print(f"{device_id},{device_token}")
        elif args.command == "group":
            devices.add_to_group(_database(url), args.tenant, args.group, args.devices)
            print(f"group {args.group}: {len(args.devices)} device(s) added", file=sys.stderr)
        elif args.command == "sweep":
            result = sweep(_database(url))
            print(json.dumps({"timed_out": result.timed_out, "completed": result.completed}))
    except psycopg.errors.UniqueViolation:
        print("error: a device with that id (or token) is already registered", file=sys.stderr)
        return 2
    except psycopg.errors.ForeignKeyViolation:
        print("error: every group member must be a registered device of the tenant", file=sys.stderr)
        return 2
    except psycopg.errors.CheckViolation as exc:
        print(f"error: invalid value ({exc.diag.constraint_name})", file=sys.stderr)
        return 2
    except psycopg.DataError as exc:
        print(f"error: invalid value ({exc})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
