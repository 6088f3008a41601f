"""Headless Chromium driven over the DevTools protocol (a websocket, with aiohttp).

The page under test needs no JavaScript; the protocol only stands in for the user: it opens
URLs, reads what is shown, clicks buttons (a real form submission, with the cookie) and takes a
screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--remote-debugging-port=0",
]
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def ensure_chromium() -> str | None:
    """Install Debian's chromium when it is missing and we may (root); None when usable, else
    why not."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", *args, "-q", "-o", "DPkg::Lock::Timeout=600"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )

    done = apt("install", "-y", "chromium")
    if done.returncode != 0:  # a new machine has no package lists yet
        apt("update")
        done = apt("install", "-y", "chromium")
    if done.returncode != 0 or not CHROMIUM.exists():
        return f"apt-get install chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Page:
    """One tab: navigate, evaluate, click, screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._loaded = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))
            elif data.get("method") == "Page.loadEventFired":
                self._loaded.set()

    async def call(self, method: str, **params: Any) -> Any:
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async with asyncio.timeout(30):
            return await future

    async def goto(self, url: str) -> None:
        self._loaded.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_loaded()

    async def wait_loaded(self) -> None:
        async with asyncio.timeout(30):
            await self._loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def text(self, selector: str) -> str | None:
        return await self.evaluate(  # type: ignore[no-any-return]
            f"(e => e && e.textContent)(document.querySelector({json.dumps(selector)}))"
        )

    async def click(self, selector: str) -> None:
        """Click and wait for the page the click leads to (a form post and its redirect)."""
        self._loaded.clear()
        clicked = await self.evaluate(
            f"(e => e ? (e.click(), true) : false)(document.querySelector({json.dumps(selector)}))"
        )
        if not clicked:
            raise AssertionError(f"nothing to click at {selector}")
        await self.wait_loaded()

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(shot["data"])
        await asyncio.to_thread(_write, path, data)
        return data

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Page]:
    """A headless Chromium with a new empty profile, stopped (by its PID) afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="bridge-chromium-"))
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit status {proc.returncode})")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            target = next(t for t in targets if t.get("type") == "page")
            ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            try:
                await page.call("Page.enable")
                yield page
            finally:
                await page.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 15)
        shutil.rmtree(profile, ignore_errors=True)
