"""The REST benchmark's load client, a process of its own (so its CPU is measured apart).

``python -m bench.rest_load PLAN.json`` reads a plan (port, scenario, seconds, warm-up
seconds, clients: each with its token and conversations), runs one client per entry
concurrently (each its own keep-alive connection, one request at a time, back to back),
prints ``MEASURE`` and ``END`` around the measured seconds, then one JSON line: requests,
errors (with a sample), latencies in ms, the measured seconds and the CPU seconds this process
used during them.

Scenarios: ``conversations`` (first page of the user's conversations), ``messages`` (first
page of one of the user's conversations), ``post`` (a message to one of them), ``mix``
(40 % / 40 % / 20 % of those, by a fixed per-client sequence).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

import aiohttp

_MIX = ("conversations", "messages", "conversations", "messages", "post")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _client(
    session: aiohttp.ClientSession,
    base: str,
    scenario: str,
    client: dict[str, Any],
    index: int,
    state: dict[str, Any],
) -> None:
    headers = {"Authorization": f"Bearer {client['token']}"}
    conversations: list[str] = client["conversations"]
    n = index  # staggers the clients' sequences
    while not state["stop"]:
        kind = _MIX[n % len(_MIX)] if scenario == "mix" else scenario
        conversation = conversations[n % len(conversations)]
        n += 1
        started = time.perf_counter()
        try:
            if kind == "conversations":
                request = session.get(
                    f"{base}/messaging-api/v1/conversations",
                    params={"pageNumber": "1", "pageRowCount": "25"},
                    headers=headers,
                )
            elif kind == "messages":
                request = session.get(
                    f"{base}/messaging-api/v1/messages",
                    params={
                        "conversationId": conversation,
                        "pageNumber": "1",
                        "pageRowCount": "25",
                    },
                    headers=headers,
                )
            else:
                request = session.post(
                    f"{base}/messaging-api/v1/messages",
                    json={"conversationId": conversation, "content": f"load message {n}"},
                    headers=headers,
                )
            async with request as resp:
                body = await resp.read()
                ok = resp.status in (200, 201)
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, body = False, repr(exc).encode()
        took = (time.perf_counter() - started) * 1000
        if not state["measuring"]:
            continue
        if ok:
            state["latencies"].append(took)
        else:
            state["errors"] += 1
            state["sample"] = state["sample"] or body[:300].decode(errors="replace")


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    base = f"http://127.0.0.1:{plan['port']}"
    state: dict[str, Any] = {
        "stop": False,
        "measuring": False,
        "latencies": [],
        "errors": 0,
        "sample": "",
    }
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_client(session, base, plan["scenario"], c, i, state))
            for i, c in enumerate(plan["clients"])
        ]
        await asyncio.sleep(plan["warmup"])
        state["measuring"] = True
        print("MEASURE", flush=True)
        cpu0, t0 = _cpu(), time.monotonic()
        await asyncio.sleep(plan["seconds"])
        state["measuring"] = False
        seconds, cpu = time.monotonic() - t0, _cpu() - cpu0
        print("END", flush=True)
        state["stop"] = True
        await asyncio.gather(*tasks)
    return {
        "requests": len(state["latencies"]),
        "errors": state["errors"],
        "error_sample": state["sample"],
        "latencies_ms": state["latencies"],
        "seconds": seconds,
        "cpu_seconds": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as fh:
        plan = json.load(fh)
    print(json.dumps(asyncio.run(run(plan))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
