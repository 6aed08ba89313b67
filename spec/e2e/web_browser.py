"""A real browser for the browser tier (spec/e2e/test_browser_web.py): Debian's chromium driven by
Selenium through Debian's chromium-driver, axe-core (npm, installed by the Makefile into
target/npm) for accessibility, zbarimg (Debian's zbar-tools) to decode QR codes from screenshots.

Nothing leaves the machine: every name but localhost fails to resolve in this browser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from prosody_host import REPO_ROOT

AXE_JS = REPO_ROOT / "target" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ZBARIMG = shutil.which("zbarimg") or "/usr/bin/zbarimg"

DESKTOP = (1280, 900)
PHONE = (390, 844)
ANDROID_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0 Mobile Safari/537.36")
LINUX_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def missing_tools() -> list[str]:
    missing = [str(p) for p in (CHROMEDRIVER, CHROMIUM, ZBARIMG) if not Path(p).exists()]
    if not AXE_JS.exists():
        missing.append(f"{AXE_JS} (make axe)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip, requirements-test.txt)")
    return missing


def screenshot_dir(host_label: str) -> Path:
    """Where pages are photographed: docs/screenshots with WEB_SCREENSHOTS=1 (for the README),
    else target/screenshots/HOST."""
    if os.environ.get("WEB_SCREENSHOTS"):
        path = REPO_ROOT / "docs" / "screenshots"
    else:
        path = REPO_ROOT / "target" / "screenshots" / host_label
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    """One headless Chromium for a test module."""

    def __init__(self, workdir: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-proxy-server", "--disable-dev-shm-usage", "--hide-scrollbars",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
                     f"--user-data-dir={workdir / 'chromium-profile'}"):
            options.add_argument(flag)
        service = Service(executable_path=CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        self.size(DESKTOP, LINUX_UA)

    def close(self):
        self.driver.quit()

    def size(self, size, user_agent=LINUX_UA):
        self.current = size
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": user_agent})
        self.driver.set_window_size(*size)
        # the viewport, not the window, is what a page sees
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size[0] < 600})

    def open(self, url):
        self.driver.get(url)
        return self

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.find("body").text

    def fill(self, values: dict):
        for name, value in values.items():
            field = self.find(f'[name="{name}"]')
            field.clear()
            field.send_keys(value)

    def submit(self, form_css="main form"):
        self.click(f"{form_css} button[type=submit]")

    def click(self, css):
        """Click what css finds and wait for the next page to replace this one."""
        from selenium.common.exceptions import WebDriverException
        for attempt in range(3):
            self.wait_loaded()
            mark = self._mark()
            try:
                self.find(css).click()
                break
            except WebDriverException as e:
                # Chromium may still swap documents after the load event: find it again
                if attempt == 2:
                    raise
                time.sleep(0.3)
        self._wait_replaced(mark)

    _marks = 0

    def _mark(self) -> int:
        """Tags the current document, so its replacement can be told apart from it."""
        Browser._marks += 1
        self.driver.execute_script("window.__pageMark = arguments[0];", Browser._marks)
        return Browser._marks

    def _wait_replaced(self, mark: int):
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def replaced(d):
            try:
                return d.execute_script(
                    "return window.__pageMark !== arguments[0] && document.readyState === 'complete';", mark)
            except WebDriverException:  # between two documents
                return False
        WebDriverWait(self.driver, 15).until(replaced)

    def wait_loaded(self):
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def loaded(d):
            try:
                return d.execute_script("return document.readyState") == "complete"
            except WebDriverException:
                return False
        WebDriverWait(self.driver, 15).until(loaded)

    def screenshot(self, path: Path) -> Path:
        """The whole page (the viewport stretched to the page's height), as a person scrolls it."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        width = self.driver.execute_script("return window.innerWidth")
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": max(height, 200), "deviceScaleFactor": 1, "mobile": width < 600})
        self.driver.save_screenshot(str(path))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": self.current[0], "height": self.current[1], "deviceScaleFactor": 1, "mobile": self.current[0] < 600})
        return path

    def axe(self) -> list[dict]:
        """axe-core's violations on the current page: [{id, impact, help, nodes}]."""
        self.driver.execute_script(AXE_JS.read_text())
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, { resultTypes: ['violations'] })"
            ".then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')) }))))"
            ".catch(e => done({ error: String(e) }));")
        assert isinstance(result, list), result
        return result

    def serious_violations(self) -> list[dict]:
        return [v for v in self.axe() if v["impact"] in ("serious", "critical")]

    def decode_qr(self, css: str, path: Path) -> list[str]:
        """The texts of the QR codes zbarimg finds in a screenshot of the element."""
        self.find(css).screenshot(str(path))
        res = subprocess.run([ZBARIMG, "--quiet", "--raw", str(path)], capture_output=True, text=True, timeout=30)
        return [line for line in res.stdout.splitlines() if line]

    def page_weight(self) -> dict:
        """Bytes over the wire and requests the current page made (Resource Timing)."""
        return self.driver.execute_script(
            "const nav = performance.getEntriesByType('navigation')[0];"
            "const res = performance.getEntriesByType('resource');"
            "return { requests: 1 + res.length,"
            " bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0),"
            " html_bytes: nav.encodedBodySize,"
            " resources: res.map(r => ({ url: r.name, bytes: r.transferSize })) };")

    def post_form(self, action: str, fields: dict):
        """Build and submit a form with these fields, as a forged page would (no inline script is
        needed: WebDriver runs it)."""
        self.wait_loaded()
        mark = self._mark()
        self.driver.execute_script(
            "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
            "for (const [k, v] of Object.entries(arguments[1])) {"
            " const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }"
            "document.body.appendChild(f); f.submit();", action, fields)
        self._wait_replaced(mark)


def save_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
