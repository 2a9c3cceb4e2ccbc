"""Headless Chromium driven over the Chrome DevTools protocol with trio-websocket: open
a page, collect its console errors and exceptions, evaluate expressions in it."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

DEVTOOLS = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_program() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not installed (tests/run.sh installs Debian's chromium)")
    return found


class Page:
    def __init__(self, ws: WebSocketConnection, session: str) -> None:
        self.ws = ws
        self.session = session
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel] = {}

    async def run(self) -> None:
        """Read the browser's messages: answers to our commands, and console events."""
        while True:
            message = json.loads(await self.ws.get_message())
            if "id" in message and message["id"] in self._waiting:
                await self._waiting.pop(message["id"]).send(message)
                continue
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                self.errors.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                self.errors.append(params["entry"].get("text", "")[:500])

    async def command(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        number = next(self._ids)
        send, receive = trio.open_memory_channel(1)
        self._waiting[number] = send
        body = {"id": number, "method": method, "params": params or {}}
        if session:
            body["sessionId"] = self.session
        await self.ws.send_message(json.dumps(body))
        with trio.fail_after(30):
            answer = await receive.receive()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    async def wait_until(self, expression: str, timeout: float = 30.0, poll: float = 0.1):
        """Evaluate `expression` until it is truthy (the page updates on its own timers)."""
        with trio.fail_after(timeout):
            while not (value := await self.evaluate(expression)):
                await trio.sleep(poll)
        return value


@asynccontextmanager
async def open_page(url: str, profile: Path) -> AsyncIterator[Page]:
    argv = [
        chromium_program(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
    ]
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            seen = b""
            with trio.fail_after(60):
                while not (found := DEVTOOLS.search(seen)):
                    chunk = await process.stderr.receive_some(4096)
                    if not chunk:
                        raise RuntimeError(f"chromium ended before its DevTools endpoint: {seen[-2000:]!r}")
                    seen += chunk
            nursery.start_soon(_drain, process.stderr)
            async with open_websocket_url(found.group(1).decode(), max_message_size=64 * 1024 * 1024) as ws:
                browser = Page(ws, "")
                nursery.start_soon(browser.run)
                target = await browser.command("Target.createTarget", {"url": "about:blank"}, session=False)
                attached = await browser.command("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False)
                browser.session = attached["sessionId"]
                for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                    await browser.command(domain)
                await browser.command("Page.navigate", {"url": url})
                yield browser
                nursery.cancel_scope.cancel()
        finally:
            process.terminate()
            with trio.move_on_after(10, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()


async def _drain(stream) -> None:
    while await stream.receive_some(65536):
        pass
