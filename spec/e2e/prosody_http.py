"""HTTP to a test server, and the test API of mod_invites_testapi on top of it."""

from __future__ import annotations

import collections
import json
import urllib.error
import urllib.request

HttpResponse = collections.namedtuple("HttpResponse", "status headers body")


class ApiError(RuntimeError):
    """A mod_invites function raised inside the server (or the API call failed)."""

    def __init__(self, fn, status, error, traceback=None):
        self.fn, self.status, self.error, self.traceback = fn, status, error, traceback
        detail = f"\n{traceback}" if traceback else ""
        super().__init__(f"api {fn!r} failed (HTTP {status}): {error}{detail}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class HttpMixin:
    """ProsodyServer's HTTP and test-API side."""

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def http_request(self, method: str, path: str, *, host: str | None = None, body: bytes | None = None,
                     headers: dict | None = None, timeout: float = 10) -> HttpResponse:
        """HTTP to the server's loopback port with a Host header naming the virtual host.

        Never follows redirects and never raises for HTTP error statuses.
        """
        hdrs = {"Host": host or self.host}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.http_url(path), data=body, headers=hdrs, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as e:
            with e:
                return HttpResponse(e.code, dict(e.headers), e.read())

    def http_get(self, path: str, *, host: str | None = None, timeout: float = 10) -> HttpResponse:
        return self.http_request("GET", path, host=host, timeout=timeout)

    # ------------------------------------------------------------------- api

    def api(self, fn: str, *args, host: str | None = None, timeout: float = 10) -> list:
        """Call fn in mod_invites' environment on `host` (or a test helper of
        mod_invites_testapi); returns the list of all return values, JSON-decoded
        (nil -> None; an empty Lua table comes back as {}). Iterators are
        drained into [[key, value], ...]. Arguments: None -> nil, list -> sequence,
        dict -> table.
        Raises ApiError when the call raised inside the server.
        """
        host = host or self.host
        payload = json.dumps({"fn": fn, "args": list(args), "nargs": len(args), "host": host}).encode()
        resp = self.http_request(
            "POST", "/invites_testapi", host=host, body=payload,
            headers={"Content-Type": "application/json"}, timeout=timeout,
        )
        if resp.status == 404 and not self.host_has_module("invites_testapi", host):
            raise ApiError(fn, 404, f"mod_invites_testapi is not loaded on {host}")
        try:
            data = json.loads(resp.body.decode() or "null")
        except ValueError:
            raise ApiError(fn, resp.status, f"non-JSON reply: {resp.body[:300]!r}") from None
        if resp.status != 200 or not isinstance(data, dict) or "results" not in data:
            err = data.get("error") if isinstance(data, dict) else data
            tb = data.get("traceback") if isinstance(data, dict) else None
            raise ApiError(fn, resp.status, err, tb)
        return data["results"]

    def api1(self, fn: str, *args, **kw):
        """api() but only the first return value."""
        results = self.api(fn, *args, **kw)
        return results[0] if results else None
