"""What one request to a source costs the polling process, layer by layer.

The poll path of a changed iGate dossier makes one history request
(``/pa/dossier/{id}/--history``) besides its share of the search page; at a few hundred
changes a second that request is the largest item of the polling process's profile.
This script starts ``dossier-sync simulate igate`` in its own process and fetches the
histories of its dossiers from this process three ways, ``--rounds`` times over, with
``--concurrency`` requests in flight:

1. through the connector, as the poll stage does (``Connector.get_json``: the source's
   semaphore, the status check, the source client with its token auth; tenacity's
   retrying only for a request that failed);
2. the source client alone (``SourceClient.request``: no retrying object);
3. baseline: aiohttp directly, the pool the source client drives.

It prints the CPU time of this process per request and each way's ratio to the
baseline. Usage::

    .venv/bin/python bench/source_requests.py [--dossiers 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from benchutil import app_process, machine

from app.config import SourceSettings
from app.servers import free_port
from app.sync.connectors import http_client, make_connector
from app.sync.connectors.http import TokenLogin

SEARCH = "/pa/dossier/search"
HISTORY = "/pa/dossier/{}/--history"


def settings(url: str, concurrency: int) -> SourceSettings:
    return SourceSettings.model_validate(
        {
            "name": "bench-igate",
            "dialect": "igate",
            "base_url": url,
            "agencies": ["000.00.00.H26"],
            "concurrency": concurrency,
            "auth": {"client_id": "demo", "client_secret": "demo"},
        }
    )


async def cpu_per_request(
    fetch: Callable[[str], Awaitable[Any]], ids: list[str], rounds: int
) -> tuple[float, float]:
    """(µs of this process's CPU a request, requests a second)."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(fetch(i) for i in ids))
    n = rounds * len(ids)
    return 1e6 * (time.process_time() - cpu) / n, n / (time.perf_counter() - wall)


async def bench(url: str, args: argparse.Namespace) -> None:
    configured = settings(url, args.concurrency)
    http = http_client(configured)
    connector = make_connector(configured, http)
    limit = asyncio.Semaphore(args.concurrency)
    try:
        rows = (await connector.get_json(SEARCH, page=0, size=500, sort="updatedDate,asc"))[
            "content"
        ]
        ids = [str(row["id"]) for row in rows][: args.dossiers]
        assert isinstance(http.auth, TokenLogin)  # noqa: S101 - the connector logged in above
        headers = {"Authorization": f"Bearer {http.auth.token}"}
        async with aiohttp.ClientSession(url, headers=headers) as session:

            async def through_connector(record_id: str) -> Any:
                return await connector.get_json(HISTORY.format(record_id))

            async def source_client(record_id: str) -> Any:
                async with limit:
                    answer = await http.request("GET", HISTORY.format(record_id))
                return answer.checked("GET", HISTORY).json()

            async def plain_aiohttp(record_id: str) -> Any:
                async with limit, session.get(HISTORY.format(record_id)) as answer:
                    answer.raise_for_status()
                    return await answer.json()

            ways = {
                "connector (tenacity only on failure)": through_connector,
                "source client over aiohttp": source_client,
                "aiohttp (baseline)": plain_aiohttp,
            }
            for fetch in ways.values():  # warm the pools and the code paths
                await cpu_per_request(fetch, ids[:50], 1)
            results = {name: await cpu_per_request(f, ids, args.rounds) for name, f in ways.items()}
    finally:
        await http.aclose()
    baseline = results["aiohttp (baseline)"][0]
    print(
        f"{len(ids)} history requests × {args.rounds} rounds, "
        f"{args.concurrency} in flight, one iGate simulator process"
    )
    for name, (cpu_us, rate) in results.items():
        print(
            f"{name:40s} {cpu_us:6.0f} µs CPU a request   {rate:6.0f}/s   {cpu_us / baseline:4.2f}×"
        )
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=500, help="the simulator's (≤ 500)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="the source's default")
    args = parser.parse_args()
    port = free_port()
    command = ["simulate", "igate", "--port", str(port), "--clean"]
    command += ["--unit", "000.00.00.H26", "--dossiers", str(min(args.dossiers, 500))]
    command += ["--changes-per-second", "0", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with app_process(command, f"{url}/_sim/stats"):
        asyncio.run(bench(url, args))


if __name__ == "__main__":
    main()
