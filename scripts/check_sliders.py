"""Check that the static sliders of built book pages move in a headless Chromium, without a kernel.

For every plotly figure with a slider on each page: screenshot it, click the slider's last step the
way a reader would (a real mouse press and release through the Chrome DevTools protocol), and check
that the slider's active step and the plotted curves changed; screenshot it again. A page without
any plotly figure (say the set-up chapter) is reported and skipped.

    python scripts/check_sliders.py _build/html/notebooks/*.html --screenshots _build/slider-check

Needs a Chromium (Debian: ``apt-get install chromium``); exits 1 if a slider did not move or no
page has one, 2 if Chromium is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

#: The state of figure ``i``: its slider's active step and the y values of the visible curves.
STATE = """(() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.layout && g.layout.sliders)[%d];
  gd.scrollIntoView({block: 'center'});
  const rail = gd.querySelector('.slider-rail-touch-rect').getBoundingClientRect();
  const curves = gd._fullData.filter(t => t.visible === true && t.mode === 'lines+markers')
                             .map(t => Array.from(t.y));
  const box = gd.getBoundingClientRect();
  return JSON.stringify({active: gd._fullLayout.sliders[0].active, curves: curves,
                         steps: gd.layout.sliders[0].steps.length,
                         rail: [rail.left, rail.top, rail.width, rail.height],
                         box: [box.left + window.scrollX, box.top + window.scrollY, box.width, box.height]});
})()"""

COUNT = """(() => {
  const graphs = [...document.querySelectorAll('.js-plotly-plot')];
  const ready = document.readyState === 'complete' && graphs.every(g => g._fullLayout);
  return JSON.stringify({ready: ready, figures: graphs.length,
                         sliders: graphs.filter(g => g.layout && g.layout.sliders).length,
                         plotly: typeof window.Plotly});
})()"""


def browser() -> str | None:
    """The first Chromium found on PATH."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket (tornado's client)."""

    def __init__(self, connection):
        self.connection, self.next_id = connection, 0

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.connection.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.connection.read_message())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return json.loads(result["result"]["value"])

    async def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def screenshot(self, path: Path, box: list[float]) -> None:
        x, y, width, height = box
        shot = await self.send("Page.captureScreenshot", format="png",
                               clip={"x": max(x, 0), "y": max(y, 0), "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))


async def check_page(devtools: DevTools, page: Path, shots: Path | None, timeout: float = 60) -> list[dict]:
    """Load ``page``, move every slider to its last step, and report what changed."""
    await devtools.send("Page.navigate", url=page.resolve().as_uri())
    deadline = time.monotonic() + timeout
    while not (count := await devtools.evaluate(COUNT))["ready"] or not count["sliders"]:
        if count["ready"] and not count["figures"]:
            return [{"page": page.name, "figure": None, "moved": None, "why": "no slider figure on this page"}]
        if time.monotonic() > deadline:
            return [{"page": page.name, "figure": None, "moved": False,
                     "why": f"no rendered slider figure after {timeout:.0f} s (window.Plotly: {count['plotly']})"}]
        await asyncio.sleep(0.25)
    results = []
    for i in range(count["sliders"]):
        before = await devtools.evaluate(STATE % i)
        await asyncio.sleep(0.3)                                   # let the scroll settle
        before = await devtools.evaluate(STATE % i)
        left, top, width, height = before["rail"]
        if shots:
            await devtools.screenshot(shots / f"{page.stem}-{i}-before.png", before["box"])
        await devtools.click(left + width - 3, top + height / 2)   # the last step of the rail
        await asyncio.sleep(0.5)
        after = await devtools.evaluate(STATE % i)
        if shots:
            await devtools.screenshot(shots / f"{page.stem}-{i}-after.png", after["box"])
        moved = after["active"] != before["active"] and after["curves"] != before["curves"]
        results.append({"page": page.name, "figure": i, "steps": before["steps"], "moved": moved,
                        "active": [before["active"], after["active"]],
                        "why": "" if moved else "the click changed neither the step nor the curves"})
    return results


async def check(pages: list[Path], shots: Path | None, chromium: str) -> list[dict]:
    """Start a headless Chromium, check every page, stop it and remove its profile."""
    from tornado.websocket import websocket_connect

    profile = Path(tempfile.mkdtemp(prefix="check-sliders-"))
    # its own session (process group), so that stopping it reaches every helper process it starts
    process = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                "--window-size=1280,1000", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(200):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        devtools = DevTools(await websocket_connect(url, max_message_size=1 << 28))
        await devtools.send("Page.enable")
        return [result for page in pages for result in await check_page(devtools, page, shots)]
    finally:
        stop(process)
        remove(profile)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop Chromium, wait (up to ``timeout`` s) for it to exit, then kill what is left of its process
    group: its helper processes may still write into the profile after the browser itself is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):  # the whole group is gone already
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue


def remove(profile: Path, tries: int = 50) -> None:
    """Remove the browser profile, retrying while a late write refills a folder (``Directory not empty``);
    a profile that still cannot be removed is left in the temporary folder, never an error."""
    for _ in range(tries):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path, help="built HTML pages with slider figures")
    parser.add_argument("--screenshots", type=Path, help="write <page>-<figure>-before/after.png here")
    args = parser.parse_args(argv)
    chromium = browser()
    if chromium is None:
        print("no Chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.pages if not p.is_file()]
    if missing:
        print(f"no such page: {', '.join(missing)}; build the book first (scripts/build_book.sh)", file=sys.stderr)
        return 2
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(check(args.pages, args.screenshots, chromium))
    for r in results:
        if r["moved"] is None:
            print(f"{r['page']}: {r['why']}")
        else:
            print(f"{r['page']} figure {r['figure']}: " + (f"moved (step {r['active'][0]} -> {r['active'][1]} of {r['steps']})"
                                                            if r["moved"] else f"NOT MOVED: {r['why']}"))
    checked = [r for r in results if r["moved"] is not None]
    return 0 if checked and all(r["moved"] for r in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
