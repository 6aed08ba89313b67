"""Web side of the community-module tests: an HTTP client that handles plain HTML the way a
browser does (follows links, submits forms to where they point), a small HTML parser, and
headless Chromium (one-shot screenshots / DOM dumps, and a DevTools session over a pipe for
pages that need their JavaScript run and clicked).

Everything goes to the test server's loopback HTTP port. A URL naming another host
(`http://localhost:5280/...`, `https://invites.example.test/...`) is sent to that port with the
URL's host name as the Host header (or the virtual host `aliases` maps it to), so the links the
server prints can be followed exactly as printed.
"""

from __future__ import annotations

import base64
import fcntl
import html.parser
import json
import os
import select
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------- HTML

VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
HIDDEN_TEXT = frozenset(("script", "style", "head", "title"))


@dataclass
class Element:
    tag: str
    attrs: dict
    children: list = field(default_factory=list)  # Element or str
    parent: "Element | None" = field(default=None, repr=False)

    def get(self, name, default=None):
        return self.attrs.get(name, default)

    @property
    def classes(self) -> set:
        return set((self.attrs.get("class") or "").split())

    @property
    def text(self) -> str:
        """Visible text, whitespace collapsed."""
        parts = []

        def walk(el):
            for child in el.children:
                if isinstance(child, str):
                    parts.append(child)
                elif child.tag not in HIDDEN_TEXT:
                    walk(child)

        walk(self)
        return " ".join(" ".join(parts).split())

    def iter(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list["Element"]:
        """Descendants by tag and exact attribute values (class_="x" matches one class of many)."""
        found = []
        for el in self.iter():
            if tag and el.tag != tag:
                continue
            ok = True
            for name, want in attrs.items():
                name = name.rstrip("_").replace("_", "-")
                if name == "class":
                    ok = want in el.classes
                else:
                    ok = el.attrs.get(name) == want
                if not ok:
                    break
            if ok:
                found.append(el)
        return found

    def find(self, tag: str | None = None, **attrs) -> "Element | None":
        found = self.find_all(tag, **attrs)
        return found[0] if found else None


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        el = Element(tag, {k: (v if v is not None else "") for k, v in attrs}, parent=self.current)
        self.current.children.append(el)
        if tag not in VOID:
            self.current = el

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, {k: (v or "") for k, v in attrs}, parent=self.current))

    def handle_endtag(self, tag):
        el = self.current
        while el is not self.root and el.tag != tag:
            el = el.parent
        if el is not self.root:  # close it (and anything left open inside it)
            self.current = el.parent

    def handle_data(self, data):
        self.current.children.append(data)


@dataclass
class Form:
    action: str
    method: str
    fields: dict  # name -> value of every input/select/textarea with a name (last one wins)
    element: Element


class Page:
    """A parsed HTML document."""

    def __init__(self, markup: str):
        builder = _TreeBuilder()
        builder.feed(markup)
        builder.close()
        self.root = builder.root
        self.markup = markup

    def find_all(self, tag=None, **attrs):
        return self.root.find_all(tag, **attrs)

    def find(self, tag=None, **attrs):
        return self.root.find(tag, **attrs)

    def by_id(self, id_: str) -> Element | None:
        return self.root.find(id=id_)

    @property
    def title(self) -> str:
        el = self.root.find("title")
        return " ".join(t for t in el.children if isinstance(t, str)).strip() if el else ""

    @property
    def text(self) -> str:
        body = self.root.find("body") or self.root
        return body.text

    def links(self) -> list[str]:
        return [a.get("href") for a in self.find_all("a") if a.get("href") is not None]

    def alternate(self) -> str | None:
        for link in self.find_all("link"):
            if "alternate" in (link.get("rel") or "").split():
                return link.get("href")
        return None

    def assets(self) -> list[str]:
        """Stylesheets, scripts and images the page loads."""
        out = []
        for link in self.find_all("link"):
            if "stylesheet" in (link.get("rel") or "").split() and link.get("href"):
                out.append(link.get("href"))
        out += [s.get("src") for s in self.find_all("script") if s.get("src")]
        out += [i.get("src") for i in self.find_all("img") if i.get("src")]
        return out

    def forms(self) -> list[Form]:
        forms = []
        for el in self.find_all("form"):
            values = {}
            for inp in el.iter():
                name = inp.get("name")
                if not name or inp.tag not in ("input", "select", "textarea", "button"):
                    continue
                if inp.tag == "input" and inp.get("type") in ("checkbox", "radio") and "checked" not in inp.attrs:
                    continue
                if inp.tag == "button":
                    continue  # only the pressed button would be sent
                values[name] = inp.get("value", inp.text if inp.tag == "textarea" else "")
            forms.append(Form(el.get("action", ""), (el.get("method") or "get").lower(), values, el))
        return forms


# --------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: dict  # lower-cased names
    body: bytes
    url: str  # as requested (before any mapping to the loopback port)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def page(self) -> Page:
        if not hasattr(self, "_page"):
            self._page = Page(self.text)
        return self._page

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def location(self) -> str | None:
        loc = self.header("location")
        return urllib.parse.urljoin(self.url, loc) if loc is not None else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class WebClient:
    """Requests to one ProsodyServer's HTTP port, addressed by the URLs the server hands out."""

    def __init__(self, server, aliases: dict | None = None, timeout: float = 15):
        self.server = server
        self.aliases = dict(aliases or {})
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        self.history: list[Response] = []

    def url(self, path: str, host: str | None = None) -> str:
        """Absolute URL of a path on a virtual host, as the server itself would print it."""
        return f"http://{host or self.server.host}:{self.server.http_port}{path}"

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        if url.startswith("/"):
            url = self.url(url)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not a web URL: {url!r}")
        vhost = self.aliases.get(parts.hostname, parts.hostname)
        target = urllib.parse.urlunsplit(("http", f"127.0.0.1:{self.server.http_port}", parts.path or "/",
                                          parts.query, ""))
        hdrs = {"Host": vhost, "User-Agent": "invites-e2e-webclient"}
        hdrs.update(headers or {})
        req = urllib.request.Request(target, data=body, headers=hdrs, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                result = Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read(), url)
        except urllib.error.HTTPError as e:
            with e:
                result = Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(), url)
        self.history.append(result)
        return result

    def get(self, url: str, headers: dict | None = None) -> Response:
        return self.request("GET", url, headers=headers)

    def follow(self, resp: Response, limit: int = 5) -> Response:
        """Follow redirects from resp (GET, as browsers do after a 303)."""
        for _ in range(limit):
            if resp.status not in (301, 302, 303, 307, 308) or not resp.location:
                return resp
            resp = self.get(resp.location)
        raise AssertionError(f"too many redirects from {resp.url}")

    def submit(self, resp: Response, values: dict, index: int = 0) -> Response:
        """Submit the index-th form of the page in resp, its own fields overridden by values.

        Posted where a browser would post it: the form's action resolved against the page URL
        (an empty action means the page URL itself, query string included).
        """
        forms = resp.page.forms()
        assert len(forms) > index, f"no form #{index} on {resp.url}:\n{resp.text[:2000]}"
        form = forms[index]
        fields = dict(form.fields)
        fields.update(values)
        action = urllib.parse.urljoin(resp.url, form.action) if form.action else resp.url
        data = urllib.parse.urlencode(fields).encode()
        if form.method == "post":
            return self.request("POST", action, body=data,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        parts = urllib.parse.urlsplit(action)
        return self.get(urllib.parse.urlunsplit((*parts[:3], data.decode(), "")))


# --------------------------------------------------------------------------- Chromium

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # Hermetic and quick: no name but localhost resolves, so third-party images (app store badges)
    # fail at once instead of holding up the load event on a network that drops packets.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
)


def chromium_binary() -> str | None:
    for name in (os.environ.get("CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _browser_env() -> dict:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.setdefault("HOME", "/root")
    return env


def _profile_dir(workdir: Path) -> Path:
    """A fresh --user-data-dir for one browser run."""
    n = 1
    while (workdir / f"chromium-profile-{n}").exists():
        n += 1
    path = workdir / f"chromium-profile-{n}"
    path.mkdir(parents=True)
    return path


def run_chromium(workdir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile under workdir; returns the finished process."""
    binary = chromium_binary()
    if not binary:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium, or make deps)")
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={_profile_dir(workdir)}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=_browser_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish within {timeout}s: {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def screenshot(url: str, path: Path, workdir: Path, size=(1280, 1400), timeout: float = 60) -> Path:
    res = run_chromium(workdir, f"--window-size={size[0]},{size[1]}", f"--screenshot={path}", url, timeout=timeout)
    if res.returncode != 0 or not Path(path).is_file():
        raise AssertionError(f"chromium --screenshot failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return Path(path)


def dump_dom(url: str, workdir: Path, size=(1280, 1400), timeout: float = 60) -> str:
    """The DOM after the page's scripts ran (chromium --dump-dom)."""
    res = run_chromium(workdir, f"--window-size={size[0]},{size[1]}", "--dump-dom", url, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"chromium --dump-dom failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return res.stdout


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the browser we started (it was started in its own session: its group is ours)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class DevToolsError(AssertionError):
    pass


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

        with Browser(workdir) as browser:
            tab = browser.open(url)
            tab.evaluate("document.title")
            tab.screenshot(path)
    """

    def __init__(self, workdir: Path, size=(1280, 1024), timeout: float = 30):
        self.workdir, self.size, self.timeout = Path(workdir), size, timeout
        self.proc: subprocess.Popen | None = None
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def __enter__(self):
        binary = chromium_binary()
        if not binary:
            raise FileNotFoundError("chromium is not installed (apt-get install chromium, or make deps)")
        # Chromium reads commands from fd 3 and writes replies to fd 4. Our ends stay close-on-exec;
        # the child's ends are first moved above 4, so putting them in place clobbers nothing.
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def child_fds():
            os.dup2(child_r, 3)  # dup2 clears close-on-exec on the copy
            os.dup2(child_w, 4)

        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={_profile_dir(self.workdir)}",
               f"--window-size={self.size[0]},{self.size[1]}", "--remote-debugging-pipe", "about:blank"]
        self._stderr = open(self.workdir / "chromium-devtools.log", "wb")
        try:
            # close_fds=False: Python's own descriptors are close-on-exec anyway, and 3/4 must survive
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                                         env=_browser_env(), start_new_session=True, preexec_fn=child_fds,
                                         close_fds=False)
        finally:
            os.close(child_r)
            os.close(child_w)
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            if proc.poll() is None:
                self._send("Browser.close", {}, None)
                proc.wait(10)
        except (OSError, subprocess.TimeoutExpired, DevToolsError):
            pass
        if proc.poll() is None:  # still ours (not reaped): its process group is ours too
            _kill_group(proc)
            proc.wait(5)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()

    # protocol

    def _send(self, method: str, params: dict, session: str | None) -> int:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DevToolsError("no answer from chromium within the timeout")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise DevToolsError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        msg_id = self._send(method, params or {}, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise DevToolsError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, session: str | None = None, timeout: float | None = None) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                return self.events.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read_message(deadline)
            if msg.get("method") == method and (session is None or msg.get("sessionId") == session):
                return msg
            self.events.append(msg)

    def open(self, url: str) -> "Tab":
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, session)
        tab.call("Page.enable")
        tab.call("Emulation.setDeviceMetricsOverride",
                 {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False})
        tab.navigate(url)
        return tab


class Tab:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.call(method, params, self.session, timeout)

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise DevToolsError(f"navigating to {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str, timeout: float | None = None):
        """Value of a JavaScript expression (promises awaited); JS exceptions raise DevToolsError."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            raise DevToolsError(f"JavaScript error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
