"""A dashboard as a signed-in user sees it: headless Chromium, driven over the DevTools
protocol, opens a Superset dashboard with a session cookie, waits until every chart has
finished loading, reads what each tile shows and saves a screenshot.

``chromium --headless --screenshot`` cannot sign in, so the browser is started with
``--remote-debugging-port`` and given the cookie of a form login instead. Used by the BI
tests and by bench/bench_bi.py (dashboard load time).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# What each dashboard tile holds once Superset is done with it, read in the page. A tile is
# loading while it shows Superset's loading indicator; it failed when it shows an error alert.
TILES_JS = """
(() => {
  const tiles = [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')];
  return JSON.stringify(tiles.map(tile => {
    const title = tile.querySelector('[data-test="editable-title"], .header-title');
    const error = tile.querySelector(
      '[data-test="alert"], .ant-alert-error, [role="alert"], .error-alert');
    return {
      title: title ? title.innerText.trim() : '',
      loading: !!tile.querySelector('[data-test="loading-indicator"], .loading'),
      error: error ? error.innerText.trim().slice(0, 300) : null,
      links: [...tile.querySelectorAll('a[href]')].map(a => a.href),
      drawn: tile.querySelectorAll('canvas, svg, table tbody tr').length,
      text: tile.innerText.trim().slice(0, 200),
    };
  }));
})()
"""


class BrowserError(RuntimeError):
    """Chromium could not be started or driven (the message says what happened)."""


@dataclass(frozen=True)
class Tile:
    title: str
    loading: bool
    error: str | None
    links: list[str]  # where the tile's links point (the links tile's are the docs)
    drawn: int  # canvases, SVGs and table rows in the tile
    text: str


@dataclass(frozen=True)
class Rendered:
    url: str
    tiles: tuple[Tile, ...]
    seconds: float  # from navigation until no tile was loading
    screenshot: Path


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}): make sysdeps installs it"
    )


def session_cookie(base_url: str, username: str, password: str) -> str:
    """Superset's session cookie of a form login (what a browser gets at /login/)."""
    with requests.Session() as http:
        page = http.get(f"{base_url}/login/", timeout=30)
        page.raise_for_status()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        if not token:
            raise BrowserError(f"{base_url}/login/ has no login form with a csrf_token")
        http.post(
            f"{base_url}/login/",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=30,
        )
        cookie = http.cookies.get("session")
        if not cookie or http.get(f"{base_url}/api/v1/me/", timeout=30).status_code != 200:
            raise BrowserError(f"signing in to {base_url} as {username!r} failed")
        return cookie


def render_dashboard(
    url: str,
    cookie: str,
    screenshot: Path,
    *,
    width: int = 1600,
    height: int = 2200,
    timeout_s: float = 120.0,
) -> Rendered:
    """Open ``url`` with Superset's session ``cookie``, wait until every tile is done (none
    loading, for two reads in a row), save a PNG screenshot and return what each tile shows."""
    # Chromium's helpers may still write to the profile as they exit
    with tempfile.TemporaryDirectory(prefix="ops-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                chromium(),
                "--headless=new",
                "--no-sandbox",  # root in CI containers
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its helper processes are stopped with it
        )
        try:
            port = _devtools_port(process, Path(profile))
            return asyncio.run(_render(port, url, cookie, screenshot, width, height, timeout_s))
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _devtools_port(process: subprocess.Popen, profile: Path) -> int:
    """The port Chromium chose, from the DevToolsActivePort file it writes in its profile."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserError(f"Chromium exited at start: {process.stderr.read()[-1000:]}")
        if active.is_file() and active.read_text().strip():
            return int(active.read_text().split()[0])
        time.sleep(0.1)
    raise BrowserError("Chromium did not open its DevTools port within 30 s")


async def _render(
    port: int, url: str, cookie: str, screenshot: Path, width: int, height: int, timeout_s: float
) -> Rendered:
    import websockets

    target = requests.put(f"http://127.0.0.1:{port}/json/new?about:blank", timeout=30).json()
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
        page = _Page(ws)
        await page.call("Network.enable")
        await page.call("Page.enable")
        parts = urlsplit(url)
        await page.call(
            "Network.setCookie",
            name="session",
            value=cookie,
            url=f"{parts.scheme}://{parts.netloc}/",
            httpOnly=True,
        )
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        started = time.monotonic()
        await page.call("Page.navigate", url=url)
        tiles: list[Tile] = []
        done_reads = 0
        while done_reads < 2:
            if time.monotonic() - started > timeout_s:
                raise BrowserError(
                    f"{url}: tiles still loading after {timeout_s:.0f} s: "
                    + ", ".join(t.title or "(untitled)" for t in tiles if t.loading)
                )
            await asyncio.sleep(0.25)
            tiles = await page.tiles()
            done = bool(tiles) and not any(t.loading for t in tiles)
            done_reads = done_reads + 1 if done else 0
        seconds = time.monotonic() - started - 0.25  # the confirming read is not load time
        await asyncio.sleep(1.0)  # ECharts animates its series in
        shot = await page.call("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return Rendered(url, tuple(await page.tiles()), seconds, screenshot)


class _Page:
    """The DevTools protocol on one page: numbered calls, events skipped."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def tiles(self) -> list[Tile]:
        result = await self.call("Runtime.evaluate", expression=TILES_JS, returnByValue=True)
        return [Tile(**t) for t in json.loads(result["result"]["value"])]
