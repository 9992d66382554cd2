#!/usr/bin/env python3
"""An end-to-end check of pg-mcp with the official MCP Python SDK (PyPI `mcp`).

Driven by tests/integration/real_clients.rs, which passes the expected values, so every check can fail
when the server returns a wrong result:

  python_sdk_client.py --url http://127.0.0.1:PORT/mcp --tenant UUID \
      --expect-store-name "Zava Seattle" --expect-distinct-stores 1 [--expect-order-count N]
  python_sdk_client.py --stdio --server-command /path/to/pg-mcp --tenant UUID ...
      (the server gets PG_MCP_DATABASE_URL and PG_MCP_TENANT_SIGNING_KEY from this
      process's environment and PG_MCP_RLS_USER_ID=--tenant)

`--expect-store-name ""` means the tenant is no store: the store-name query must return no row.
`--check-resources` also reads the resources and completes a resource template's arguments.

Steps: initialize, tools/list (all eight tools), execute_query
`SELECT store_name FROM retail.stores WHERE rls_user_id = $1` with params [tenant],
execute_query `SELECT count(DISTINCT store_id) FROM retail.orders` (row-level security decides
what the tenant sees) and, when asked, `SELECT count(*) FROM retail.orders`. With
--check-resources: resources/list (databases://list, schema://default), resources/templates/list
(table://{database}/{schema}/{table}), resources/read of table://default/retail/orders and
schema://default, and completion/complete of the template's schema and table arguments.

Prints one JSON summary on stdout. Exit status: 0 every check passed, 1 a check failed,
2 the session itself failed (connection, protocol error, timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import traceback
from importlib.metadata import version as package_version
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

EXPECTED_TOOLS = {
    "execute_query",
    "list_tables",
    "get_table_schema",
    "get_multiple_table_schemas",
    "explain_query",
    "health_check",
    "get_metrics",
    "semantic_search_products",
}


def attr(obj: Any, *names: str) -> Any:
    """Reads a field under its SDK 2.x (snake_case) or 1.x (camelCase) name."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


@contextlib.asynccontextmanager
async def http_streams(url: str, headers: dict[str, str]):
    """Streamable HTTP transport: the current API, or the 1.x `streamablehttp_client`."""
    try:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
    except ImportError:  # mcp < 1.24
        from mcp.client.streamable_http import streamablehttp_client

        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            yield read, write
        return
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams[0], streams[1]


@contextlib.asynccontextmanager
async def stdio_streams(command: str, tenant: str):
    env = {
        "PG_MCP_DATABASE_URL": os.environ["PG_MCP_DATABASE_URL"],
        "PG_MCP_TENANT_SIGNING_KEY": os.environ["PG_MCP_TENANT_SIGNING_KEY"],
        "PG_MCP_RLS_USER_ID": tenant,
        "PG_MCP_LOG_LEVEL": os.environ.get("PG_MCP_LOG_LEVEL", "warn"),
    }
    params = StdioServerParameters(command=command, args=["stdio"], env=env)
    async with stdio_client(params) as streams:
        yield streams[0], streams[1]


class Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, expected: Any, actual: Any) -> None:
        self.items.append({"check": name, "ok": bool(ok), "expected": expected, "actual": actual})

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.items)


async def query(session: ClientSession, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"sql": sql}
    if params is not None:
        arguments["params"] = params
    result = await session.call_tool("execute_query", arguments)
    return {
        "is_error": bool(attr(result, "is_error", "isError")),
        "structured": attr(result, "structured_content", "structuredContent"),
    }


async def run(args: argparse.Namespace, summary: dict[str, Any], checks: Checks) -> None:
    if args.stdio:
        transport = stdio_streams(args.server_command, args.tenant)
    else:
        transport = http_streams(args.url, {"x-rls-user-id": args.tenant})
    async with transport as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            info = attr(init, "server_info", "serverInfo")
            summary["server"] = {"name": info.name, "version": info.version}
            summary["protocol_version"] = attr(init, "protocol_version", "protocolVersion")
            checks.check("server name", info.name == "pg-mcp", "pg-mcp", info.name)

            tools = sorted(t.name for t in (await session.list_tools()).tools)
            summary["tools"] = tools
            missing = sorted(EXPECTED_TOOLS - set(tools))
            checks.check("tools/list has every tool", not missing, sorted(EXPECTED_TOOLS), tools)

            stores = await query(
                session, "SELECT store_name FROM retail.stores WHERE rls_user_id = $1", [args.tenant]
            )
            summary["store_name_result"] = stores
            rows = (stores["structured"] or {}).get("rows")
            expected_rows = [[args.expect_store_name]] if args.expect_store_name else []
            checks.check(
                "store name of the tenant",
                not stores["is_error"] and rows == expected_rows,
                expected_rows,
                rows if not stores["is_error"] else stores["structured"],
            )

            distinct = await query(session, "SELECT count(DISTINCT store_id) FROM retail.orders")
            summary["distinct_stores_result"] = distinct
            value = None
            if not distinct["is_error"]:
                value = ((distinct["structured"] or {}).get("rows") or [[None]])[0][0]
            checks.check(
                "distinct stores in retail.orders",
                value == args.expect_distinct_stores,
                args.expect_distinct_stores,
                value if not distinct["is_error"] else distinct["structured"],
            )

            if args.expect_order_count is not None:
                orders = await query(session, "SELECT count(*) FROM retail.orders")
                count = None
                if not orders["is_error"]:
                    count = ((orders["structured"] or {}).get("rows") or [[None]])[0][0]
                checks.check(
                    "orders visible to the tenant",
                    count == args.expect_order_count,
                    args.expect_order_count,
                    count if not orders["is_error"] else orders["structured"],
                )

            if args.check_resources:
                await check_resources(session, summary, checks)


TABLE_TEMPLATE = "table://{database}/{schema}/{table}"


async def check_resources(session: ClientSession, summary: dict[str, Any], checks: Checks) -> None:
    uris = sorted(str(r.uri) for r in (await session.list_resources()).resources)
    summary["resources"] = uris
    wanted = ["databases://list", "schema://default"]
    checks.check("resources/list", all(u in uris for u in wanted), wanted, uris)

    listed = await session.list_resource_templates()
    templates = sorted(attr(t, "uri_template", "uriTemplate") for t in attr(listed, "resource_templates", "resourceTemplates"))
    summary["resource_templates"] = templates
    checks.check("resources/templates/list", TABLE_TEMPLATE in templates, TABLE_TEMPLATE, templates)

    table = (await session.read_resource("table://default/retail/orders")).contents[0]
    text = getattr(table, "text", "")
    checks.check(
        "read table://default/retail/orders",
        "retail.orders" in text and "order_id" in text and "retail.stores" in text,
        "the table's prompt text (columns, foreign keys)",
        text[:300],
    )
    schema = (await session.read_resource("schema://default")).contents[0]
    text = getattr(schema, "text", "")
    checks.check(
        "read schema://default",
        text.startswith("Database: default") and "retail.order_items" in text,
        "the database's prompt text",
        text[:200],
    )

    try:
        from mcp.types import ResourceTemplateReference as TemplateRef
    except ImportError:  # older SDKs
        from mcp.types import ResourceReference as TemplateRef
    ref = TemplateRef(type="ref/resource", uri=TABLE_TEMPLATE)
    schemas = await session.complete(ref, {"name": "schema", "value": "ret"}, {"database": "default"})
    values = list(schemas.completion.values)
    checks.check("complete schema 'ret'", values == ["retail"], ["retail"], values)
    tables = await session.complete(
        ref, {"name": "table", "value": "ord"}, {"database": "default", "schema": "retail"}
    )
    values = sorted(tables.completion.values)
    checks.check(
        "complete table 'ord' in retail",
        values == ["order_items", "orders"],
        ["order_items", "orders"],
        values,
    )


def describe(exc: BaseException) -> str:
    """One line per leaf exception (task groups wrap the real cause in ExceptionGroups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument("--stdio", action="store_true", help="launch the server with `stdio`")
    parser.add_argument("--server-command", help="path of the pg-mcp binary (with --stdio)")
    parser.add_argument("--tenant", required=True, help="RLS user id (x-rls-user-id)")
    parser.add_argument("--expect-store-name", required=True, help='"" when the tenant is no store')
    parser.add_argument("--expect-distinct-stores", type=int, required=True)
    parser.add_argument("--expect-order-count", type=int)
    parser.add_argument("--check-resources", action="store_true", help="read resources, complete arguments")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole session")
    args = parser.parse_args()
    if args.stdio == bool(args.url) or (args.stdio and not args.server_command):
        parser.error("give either --url or --stdio with --server-command")

    summary: dict[str, Any] = {
        "client": "mcp-python-sdk",
        "sdk_version": package_version("mcp"),
        "transport": "stdio" if args.stdio else "streamable-http",
        "target": args.server_command if args.stdio else args.url,
        "tenant": args.tenant,
    }
    checks = Checks()
    status = 0
    try:
        asyncio.run(asyncio.wait_for(run(args, summary, checks), args.timeout))
    except BaseException as exc:  # noqa: BLE001 - report every failure of the session itself
        if isinstance(exc, KeyboardInterrupt):
            raise
        summary["session_error"] = describe(exc)
        traceback.print_exc(file=sys.stderr)
        status = 2
    summary["checks"] = checks.items
    if status == 0 and not checks.ok:
        status = 1
    summary["ok"] = status == 0
    print(json.dumps(summary, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
