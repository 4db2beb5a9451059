"""A real browser for tests: Debian's headless Chromium driven by chromedriver over the W3C
WebDriver HTTP API, with nothing but urllib and json (no client library to pin).

tools/setup.sh installs `chromium` and `chromium-driver`. Each `Browser` runs its own
chromedriver on a free port with its own Chromium profile folder, and stops both on exit.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.runner.ports import free_port, port_open
from tools.runner.process import ManagedProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
WAIT_POLL_S = 0.2
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
"""The W3C name of the key that holds an element reference in WebDriver's JSON."""


class WebDriverError(RuntimeError):
    pass


@dataclass(frozen=True)
class Element:
    browser: Browser
    id: str

    def click(self) -> None:
        self.browser.command("POST", f"/element/{self.id}/click", {})

    def type(self, text: str) -> None:
        self.browser.command("POST", f"/element/{self.id}/value", {"text": text})

    def scroll_into_view(self) -> None:
        script = "arguments[0].scrollIntoView({block: 'center'})"
        reference = {ELEMENT_KEY: self.id}
        self.browser.command("POST", "/execute/sync", {"script": script, "args": [reference]})

    @property
    def text(self) -> str:
        return str(self.browser.command("GET", f"/element/{self.id}/text"))


@dataclass
class Browser:
    """One WebDriver session in headless Chromium."""

    driver_url: str
    session_id: str = ""

    def _request(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.driver_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as reply:
                return json.load(reply)["value"]
        except urllib.error.HTTPError as error:
            value = json.load(error).get("value", {})
            message = f"{method} {path}: {value.get('error')}: {value.get('message')}"
            raise WebDriverError(message) from error

    def command(self, method: str, path: str, body: object = None) -> Any:
        return self._request(method, f"/session/{self.session_id}{path}", body)

    def open_session(self, profile_dir: Path) -> None:
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile_dir}",
            "--window-size=1280,1024",
        ]
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": str(CHROMIUM), "args": args},
        }
        value = self._request("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session_id = value["sessionId"]

    def close_session(self) -> None:
        if self.session_id:
            self._request("DELETE", f"/session/{self.session_id}")
            self.session_id = ""

    def get(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    def find_all(self, css: str) -> list[Element]:
        found = self.command("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, item[ELEMENT_KEY]) for item in found]

    def wait_for(self, css: str, timeout_s: float, text: str | None = None) -> Element:
        """The first element matching `css` (and containing `text`, if given), waiting for the
        page's scripts; fails with what the page shows instead."""
        deadline = time.monotonic() + timeout_s
        while True:
            for element in self.find_all(css):
                if text is None or text in element.text:
                    return element
            if time.monotonic() > deadline:
                body = self.find_all("body")
                shown = body[0].text[:2000] if body else "(no body)"
                raise WebDriverError(
                    f"no {css!r} containing {text!r} after {timeout_s}s; page:\n{shown}"
                )
            time.sleep(WAIT_POLL_S)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.command("GET", "/screenshot")))
        return path


@contextmanager
def headless_chromium(work_dir: Path) -> Iterator[Browser]:
    """chromedriver and one Chromium session, both stopped however the test ends."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.exists():
            raise FileNotFoundError(f"{program} missing: run tools/setup.sh (installs chromium)")
    port = free_port()
    driver = ManagedProcess(
        name="chromedriver",
        argv=[str(CHROMEDRIVER), f"--port={port}", "--allowed-ips=127.0.0.1"],
        log_path=work_dir / "chromedriver.log",
    ).start()
    try:
        driver.wait_until(lambda: port_open("127.0.0.1", port), START_TIMEOUT_S)
        browser = Browser(f"http://127.0.0.1:{port}")
        browser.open_session(work_dir / "chromium-profile")
        try:
            yield browser
        finally:
            browser.close_session()
    finally:
        driver.stop()
