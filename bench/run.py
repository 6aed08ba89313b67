#!/usr/bin/env python3
"""make bench: Debian's stock invite modules against ours, in both storage layouts, side by side.

Servers (private Prosody instances through spec/e2e/prosody.py, loopback only, run at once):
  stock       Debian's modules (/usr/lib/prosody/modules)
  ours        ours, default storage layout (invites_storage_layout unset: "records")
  ours_stock  ours, invites_storage_layout = "stock" (stock's invite_token store + audit records)
  aa          a second stock server: the A/A row of the registration figure (the noise of a run)
Each has the hosts int.bench (internal storage), sql.bench (SQLite), pg.bench (PostgreSQL, a private
server from spec/e2e/postgres.py, one database per Prosody; --postgres no leaves it out) and
soak.bench (internal). Measurements are interleaved (each round visits every variant, in a
rotating order); a value is the median over rounds of each round's median.

The servers' data directories are on /dev/shm (tmpfs: the figures measure the modules, not a disk
shared with other processes; --disk puts them on disk, where SQLite also pays its commit fsync).
Live invites are filled straight into the store, never call by call: one invite is made through
the API (create_account()), and what it stored (files under data/HOST/, or rows of the `prosody`
table) is cloned with fresh tokens, so the servers' own memory never sees the fill.

  api   in-process cost of create_account(), get(token), get(token)+:use() with N = 0, 1 000,
        10 000, 100 000 live invites, per backend (bench/modules/mod_invites_bench.lua times the
        calls); stock and the stock layout stop at 10 000 on every backend (internal storage is
        O(N) there: seconds per call at 100 000). With a breakdown of where the time goes
        (storage reads, storage writes, binding, rest) for stock and ours on internal and SQLite.
  reg   invite registrations over loopback (raw XML c2s streams: pre-auth + in-band
        registration), registrations/s and p50/p99 at c=1 and c=20, with the A/A row; and the
        breakdown of one registration
  soak  ours: 10 000 pending invites on internal storage, then registrations with them at c=20:
        registrations/s, worst event-loop stall (a 5 ms timer's lateness), RSS start/end
  rss   peak RSS (VmHWM) of a fresh stock and a fresh ours server at N=100 000 on internal
        storage while create_account() and get() run

Prints the tables, the targets with PASS/MISS, writes target/bench.json and the chart
(docs/bench.png, matplotlib from the test venv). Performance is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "spec" / "e2e"))

import postgres  # noqa: E402  (a private PostgreSQL for pg.bench)
import prosody  # noqa: E402  (the e2e harness: starts and stops private servers)
import prosody_host  # noqa: E402  (which Prosody, which plugin directory)

VARIANTS = ("stock", "ours", "ours_stock")
LABELS = {"stock": "stock", "ours": "ours (default layout)", "ours_stock": "ours (stock layout)",
          "aa": "stock again (A/A)"}
SHORT = {"stock": "stock", "ours": "ours", "ours_stock": "ours/stock-layout", "aa": "stock A/A"}
INT, SQL, PG, SOAK = "int.bench", "sql.bench", "pg.bench", "soak.bench"
BACKEND_NAMES = {"internal": "internal", "sql": "SQLite", "postgres": "PostgreSQL"}
OPS = ("create_account", "get", "get_use")  # charted, with targets
MEASURED = OPS + ("junk",)  # and get() of strings that cannot be tokens (table only)
OP_NAMES = {"create_account": "create_account()", "get": "get()", "get_use": "get()+:use()",
            "junk": "get(junk)"}
# Stock's layout keeps every invite in one map: internal storage parses and rewrites all of it
# per call, so stock and our stock layout stop here (the issue allows it; the output says so).
STOCK_MAX = 10000
MODULES = [
    "roster", "saslauth", "disco", "http",
    "invites", "invites_register", "invites_testapi", "invites_bench",
]
JSON_PATH = REPO / "target" / "bench.json"
CHART_PATH = REPO / "docs" / "bench.png"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def lua_dbi_postgresql() -> bool:
    """Is lua-dbi-postgresql there for the Lua Prosody runs (5.4 on Debian)?"""
    probe = 'assert(package.searchpath("dbd.postgresql", package.cpath))'
    try:
        return subprocess.run(["lua5.4", "-e", probe], capture_output=True).returncode == 0
    except OSError:
        return False


def new_tokens(count: int) -> list[str]:
    """Tokens shaped like ours and stock's (18 random bytes, base64url), none starting with '-'."""
    out = []
    while len(out) < count:
        token = secrets.token_urlsafe(18)
        if not token.startswith("-"):
            out.append(token)
    return out


# --------------------------------------------------------------------------- servers


class Bench:
    """One server of the bench and its /invites_bench endpoint."""

    def __init__(self, variant: str, server: prosody.ProsodyServer, pg_database: str | None):
        self.variant = variant
        self.server = server
        self.pg_database = pg_database

    def call(self, host: str, op: str, timeout: float = 600, **args) -> dict:
        body = json.dumps({"op": op, **args}).encode()
        resp = self.server.http_request("POST", "/invites_bench", host=host, body=body,
                                        headers={"Content-Type": "application/json"}, timeout=timeout)
        data = json.loads(resp.body.decode() or "null")
        if resp.status != 200:
            raise RuntimeError(f"{self.variant} {host} {op}: HTTP {resp.status}: {data}")
        return data

    def reset_peak(self) -> bool:
        """Resets the kernel's peak-RSS mark (VmHWM) of the server (Linux >= 4.0)."""
        try:
            Path(f"/proc/{self.server.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def memory(self) -> dict:
        """VmHWM and VmRSS in MiB."""
        status = Path(f"/proc/{self.server.pid}/status").read_text()
        out = {}
        for key in ("VmHWM", "VmRSS"):
            m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
            out[key] = int(m.group(1)) / 1024 if m else None
        return out


def make_server(variant: str, workdir: Path, pg: postgres.PostgresServer | None, hosts=None) -> Bench:
    impl = "stock" if variant in ("stock", "aa") else "ours"
    log_path = workdir / "prosody.log"
    hosts = list(hosts or (INT, SQL, PG, SOAK))
    config = {}
    database = None
    for host in hosts:
        if host == SQL:
            config[host] = {"storage": "sql"}
        elif host == PG and pg is not None:
            # Its own `sql` option: this host's data goes to a database of this server's own.
            database = pg.create_database(f"bench_{variant}_{os.getpid()}")
            config[host] = {"storage": "sql", "sql": postgres.prosody_sql_options(pg.conninfo, database)}
        elif host != PG:
            config[host] = {}
    options = {
        # What an operator runs: info level (debug logging would dominate the cheap calls).
        "log": [{"levels": {"min": "info"}, "to": "file", "filename": str(log_path)}],
        "sql": {"driver": "SQLite3", "database": str(workdir / "data" / "bench.sqlite")},
        "registration_invite_only": True,
        # Our purge runs 60 s after start, then hourly, reading every invite in slices on the
        # timer: the first would land in the middle of a figure (the registrations leave
        # thousands of audit records). The bench measures the calls, not the purge.
        "invites_purge_delay": 86400,
    }
    if variant == "ours_stock":
        options["invites_storage_layout"] = "stock"
    server = prosody.ProsodyServer(workdir, impl=impl, name=f"bench-{variant}", hosts=config, modules=MODULES,
                                   storage="internal", plugin_paths=[BENCH_DIR / "modules"], options=options)
    return Bench(variant, server, database)


# --------------------------------------------------------------------------- filling stores


def dm_encode(text: str) -> str:
    """util.datamanager's encoding of user and host names in file names."""
    return re.sub(r"[^A-Za-z0-9]", lambda m: "%%%02x" % ord(m.group(0)), text)


class Filler:
    """Clones one invite, as the server stored it, into one host's store with fresh tokens."""

    def __init__(self, bench: Bench, host: str, backend: str, pg: postgres.PostgresServer | None):
        self.bench, self.host, self.backend, self.pg = bench, host, backend, pg
        self.template: str | None = None
        self.live = 0  # invites the bench made live (the template and its clones)

    def fill_to(self, size: int) -> list[str]:
        """Makes `size` invites live (only ever grows); returns the tokens added by cloning."""
        if size <= self.live:
            return []
        if self.template is None:
            self.template = self.bench.call(self.host, "template")["token"]
            self.live = 1
        tokens = new_tokens(size - self.live)
        if tokens:
            {"internal": self._clone_internal, "sql": self._clone_sqlite,
             "postgres": self._clone_postgres}[self.backend](tokens)
        self.live = size
        return tokens

    # Internal storage: data/HOST/STORE/USER.dat per user, data/HOST/STORE.dat for the host.
    def _clone_internal(self, tokens: list[str]) -> None:
        t = self.template
        host_dir = self.bench.server.data_dir / dm_encode(self.host)
        cloned = 0
        for store_dir in sorted(p for p in host_dir.iterdir() if p.is_dir()):
            src = store_dir / f"{dm_encode(t)}.dat"
            if src.is_file():  # a record of its own (records layout, audit records)
                text = src.read_text()
                for token in tokens:
                    (store_dir / f"{dm_encode(token)}.dat").write_text(text.replace(t, token))
                cloned += 1
        for src in sorted(host_dir.glob("*.dat")):  # host-level maps keyed by token (stock layout)
            lines = src.read_text().split("\n")
            start = next((i for i, line in enumerate(lines) if line.startswith(f'\t["{t}"] = ')), None)
            if start is None:
                continue
            end = start
            if lines[start].endswith("{"):
                end = lines.index("\t};", start)
            block = "\n".join(lines[start:end + 1])
            clones = "\n".join(block.replace(t, token) for token in tokens)
            src.write_text("\n".join(lines[:end + 1] + [clones] + lines[end + 1:]))
            cloned += 1
        if not cloned:
            raise RuntimeError(f"{self.bench.variant} {self.host}: template invite {t[:6]}… not found under {host_dir}")

    def _template_rows(self, rows):
        t = self.template
        if not rows:
            raise RuntimeError(f"{self.bench.variant} {self.host}: template invite {t[:6]}… not found in SQL")
        return [(user, store, key, typ, value) for user, store, key, typ, value in rows]

    def _clone_sqlite(self, tokens: list[str]) -> None:
        t = self.template
        path = self.bench.server.data_dir / "bench.sqlite"
        conn = sqlite3.connect(path, timeout=60)
        try:
            rows = self._template_rows(conn.execute(
                'SELECT "user", "store", "key", "type", "value" FROM "prosody" WHERE "host"=? AND ("user"=? OR "key"=?)',
                (self.host, t, t)).fetchall())
            with conn:
                conn.executemany(
                    'INSERT INTO "prosody" ("host", "user", "store", "key", "type", "value") VALUES (?,?,?,?,?,?)',
                    ((self.host, u.replace(t, tok), s, k.replace(t, tok), ty, v.replace(t, tok))
                     for tok in tokens for u, s, k, ty, v in rows))
        finally:
            conn.close()

    def _psql(self, args: list[str], stdin: str | None = None) -> str:
        ci = self.pg.conninfo
        cmd = [str(postgres.bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ci["host"],
               "-p", str(ci["port"]), "-U", ci["user"], "-d", self.bench.pg_database, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def _clone_postgres(self, tokens: list[str]) -> None:
        t = self.template
        out = self._psql(["-A", "-t", "-F", "\x1f", "-R", "\x1e", "-c",
                          'SELECT "user", "store", "key", "type", "value" FROM "prosody" '
                          f"WHERE \"host\"='{self.host}' AND (\"user\"='{t}' OR \"key\"='{t}')"])
        rows = self._template_rows([tuple(r.split("\x1f")) for r in out.strip("\n\x1e").split("\x1e") if r])

        def esc(v: str) -> str:  # COPY's text format
            return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

        data = "".join(
            "\t".join(esc(x) for x in (self.host, u.replace(t, tok), s, k.replace(t, tok), ty, v.replace(t, tok))) + "\n"
            for tok in tokens for u, s, k, ty, v in rows)
        self._psql(["-c", 'COPY "prosody" ("host", "user", "store", "key", "type", "value") FROM STDIN'], stdin=data)


# --------------------------------------------------------------------------- api figure


# A variant whose get()+:use() cost more than SLOW_US at the previous N is measured in one round of
# two samples per operation (its figure is one big parse: stable); past STOCK_MAX, one over TOO_SLOW_US
# stops (ours before its per-invite layout: minutes per figure at 100 000).
SLOW_US = 20000
TOO_SLOW_US = 100000


def measure_opts(slow: bool, quick: bool) -> dict:
    """Samples per operation and round: enough for a stable median, bounded time."""
    if slow:
        base = {"min_iters": 2, "max_iters": 2, "budget": 0}
    else:
        base = {"min_iters": 3, "max_iters": 300, "budget": 0.25 if not quick else 0.08}
    return {op: base for op in MEASURED}


def api_figure(benches, fillers, backends, sizes, max_size, rounds, quick, breakdown_sizes, result):
    fig = result.setdefault("api", {})
    bd = result.setdefault("breakdown", {})
    stopped = result.setdefault("api_stopped", {})
    for backend, host in backends.items():
        last = {}  # variant -> get()+:use() median at the previous N
        for size in sizes:
            t0 = time.monotonic()
            active = []
            for v in VARIANTS:
                limit = max_size if v == "ours" else min(max_size, STOCK_MAX)
                if size > limit:
                    stopped.setdefault(f"{backend}/{v}", f"stops at N={limit:,}")
                elif size > STOCK_MAX and (last.get(v) or 0) > TOO_SLOW_US:
                    stopped.setdefault(f"{backend}/{v}", f"stopped after N={sizes[sizes.index(size) - 1]:,}: "
                                       f"get()+:use() took {fmt_us(last[v])}")
                else:
                    active.append(v)
            if not active:
                continue
            slow = {v: (last.get(v) or 0) > SLOW_US for v in active}
            fill_s = {}
            for v in active:
                f0 = time.monotonic()
                fillers[(v, host)].fill_to(size)
                fill_s[v] = round(time.monotonic() - f0, 2)
            per_round = {v: {op: [] for op in MEASURED} for v in active}
            samples = {v: {op: [] for op in MEASURED} for v in active}
            for r in range(rounds):
                order = active[r % len(active):] + active[:r % len(active)]
                for v in order:
                    if slow[v] and r >= 1:
                        continue
                    out = benches[v].call(host, "measure", ops=list(MEASURED), opts=measure_opts(slow[v], quick))
                    for op in MEASURED:
                        per_round[v][op].append(out[op]["median_us"])
                        samples[v][op].append(out[op]["n"])
            for op in MEASURED:
                values = {v: median(per_round[v][op]) for v in active}
                fig[f"{backend}/{size}/{op}"] = {
                    "backend": backend, "size": size, "op": op, "unit": "us", **values,
                    "ratio": {v: ratio(values.get(v), values.get("stock")) for v in active if v != "stock"},
                    "rounds": per_round_of(per_round, op), "samples_per_round": per_round_of(samples, op),
                    "fill_s": fill_s,
                }
            for v in active:
                last[v] = fig[f"{backend}/{size}/get_use"][v]
            if backend in ("internal", "sql") and size in breakdown_sizes:
                for v in ("stock", "ours"):
                    if v not in active:
                        continue
                    out = benches[v].call(host, "measure", ops=list(OPS), breakdown=True,
                                          opts=measure_opts(slow[v], quick))
                    for op in OPS:
                        bd[f"{backend}/{size}/{op}/{v}"] = {"backend": backend, "size": size, "op": op,
                                                            "variant": v, **out[op]["breakdown"]}
            log(f"  api {backend} N={size}: {time.monotonic() - t0:.1f}s (fill {fill_s})")


def per_round_of(table, op):
    return {v: table[v][op] for v in table}


# --------------------------------------------------------------------------- raw XMPP load

class RawClient:
    """One c2s stream over asyncio, raw XML: just enough to pre-auth and register."""

    def __init__(self, port: int, host: str):
        self.port, self.host = port, host
        self.buf = ""
        self.reader = self.writer = None
        self.seq = 0

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            (f"<?xml version='1.0'?><stream:stream to={quoteattr(self.host)} xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode())
        await self.read_until(re.compile(r"</stream:features>|<stream:features[^>]*/>"))

    async def read_until(self, pattern: re.Pattern, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply matching {pattern.pattern!r}")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                raise ConnectionError("server closed the stream")
            self.buf += data.decode("utf-8", "replace")

    async def iq(self, payload: str) -> str:
        """Sends an iq set; returns the reply's type attribute."""
        self.seq += 1
        iq_id = f"b{self.seq}"
        self.writer.write(f"<iq type='set' id='{iq_id}'>{payload}</iq>".encode())
        m = await self.read_until(re.compile(r"<iq\b[^>]*\bid=['\"]" + iq_id + r"['\"][^>]*>"))
        t = re.search(r"\btype=['\"](\w+)['\"]", m.group(0))
        return t.group(1) if t else "?"

    async def preauth(self, token: str) -> str:
        return await self.iq(f"<preauth xmlns='urn:xmpp:pars:0' token={quoteattr(token)}/>")

    async def register(self, username: str, password: str) -> str:
        return await self.iq(f"<query xmlns='jabber:iq:register'><username>{escape(username)}</username>"
                             f"<password>{escape(password)}</password></query>")

    async def close(self):
        if self.writer is not None:
            try:
                self.writer.write(b"</stream:stream>")
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (OSError, asyncio.TimeoutError):
                pass


async def preauth_and_register(port, host, token, username):
    """One stream: pre-auth with `token`, then register `username` (None: pre-auth only).
    Returns (pre-auth answer, registration answer or "skipped"); network errors raise."""
    client = RawClient(port, host)
    try:
        await client.open()
        pre = await client.preauth(token)
        if pre != "result" or username is None:
            return pre, "skipped"
        return pre, await client.register(username, "bench-pw")
    finally:
        await client.close()


NETWORK_ERRORS = (OSError, TimeoutError, ConnectionError, asyncio.TimeoutError)


async def register_all(port, host, jobs, concurrency, deadline_s=None):
    """jobs: [(token, username)]; returns (wall seconds, latencies, failures). With deadline_s,
    no new registration starts after that many seconds."""
    queue = list(reversed(jobs))
    latencies, failures = [], []
    stop_at = time.monotonic() + deadline_s if deadline_s else None

    async def worker():
        while queue and (stop_at is None or time.monotonic() < stop_at):
            token, username = queue.pop()
            t0 = time.monotonic()
            try:
                pre, reg = await preauth_and_register(port, host, token, username)
            except NETWORK_ERRORS as e:
                failures.append((username, "error", repr(e)))
                continue
            if pre == "result" and reg == "result":
                latencies.append(time.monotonic() - t0)
            else:
                failures.append((username, pre, reg))

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - t0, latencies, failures


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(round(p * len(values) + 0.5)) - 1))]


REG_VARIANTS = ("stock", "ours", "ours_stock", "aa")


def reg_figure(benches, backends, plan, rounds, breakdown_count, deadline_s, result):
    """plan: [(concurrency, registrations per batch)]; a batch starts no registration after
    deadline_s (registrations/s counts the ones done; a slow disk must not stretch the run)."""
    fig = result.setdefault("reg", {})
    run_id = int(time.time()) % 100000
    for backend, host in backends.items():
        for concurrency, count in plan:
            t0 = time.monotonic()
            rows = {v: {"rps": [], "p50_ms": [], "p99_ms": [], "failures": 0, "cut": 0} for v in REG_VARIANTS}
            for r in range(rounds):
                order = REG_VARIANTS[r % 4:] + REG_VARIANTS[:r % 4]
                for v in order:
                    b = benches[v]
                    tokens = b.call(host, "pool", n=count)["tokens"]
                    jobs = [(tok, f"b{run_id}{v[:2]}c{concurrency}r{r}n{i}") for i, tok in enumerate(tokens)]
                    wall, lat, fails = asyncio.run(register_all(b.server.c2s_port, host, jobs, concurrency, deadline_s))
                    row = rows[v]
                    row["rps"].append(len(lat) / wall if wall else None)
                    row["p50_ms"].append(percentile(lat, 0.50) * 1e3 if lat else None)
                    row["p99_ms"].append(percentile(lat, 0.99) * 1e3 if lat else None)
                    row["failures"] += len(fails)
                    if fails:
                        log(f"    {v}: {len(fails)} registrations failed, e.g. {fails[:2]}")
                    tried = len(lat) + len(fails)
                    left = b.call(host, "pending", tokens=tokens[:tried])["count"]
                    if left != len(fails):
                        log(f"    {v}: {left} invites still usable after {len(lat)} registrations of {tried}")
                    if tried < count:  # cut by the deadline: the rest must not stay live
                        b.call(host, "discard", tokens=tokens[tried:])
                        row["cut"] += 1
            for metric in ("rps", "p50_ms", "p99_ms"):
                values = {v: median(rows[v][metric]) for v in REG_VARIANTS}
                fig[f"{backend}/c{concurrency}/{metric}"] = {
                    "backend": backend, "concurrency": concurrency, "registrations": count, "metric": metric,
                    **values, "ratio": {v: ratio(values[v], values["stock"]) for v in REG_VARIANTS if v != "stock"},
                    "rounds": {v: rows[v][metric] for v in REG_VARIANTS},
                    "failures": {v: rows[v]["failures"] for v in REG_VARIANTS},
                    "batches_cut_by_deadline": {v: rows[v]["cut"] for v in REG_VARIANTS}, "deadline_s": deadline_s,
                }
            log(f"  reg {backend} c={concurrency}: {time.monotonic() - t0:.1f}s")
        if backend in ("internal", "sql") and breakdown_count:
            bd = result.setdefault("breakdown", {})
            for v in ("stock", "ours"):
                b = benches[v]
                tokens = b.call(host, "pool", n=breakdown_count)["tokens"]
                jobs = [(tok, f"d{run_id}{v[:2]}n{i}") for i, tok in enumerate(tokens)]
                b.call(host, "breakdown_start")
                wall, lat, fails = asyncio.run(register_all(b.server.c2s_port, host, jobs, 1))
                out = b.call(host, "breakdown_stop")
                n = max(1, len(lat))
                total = statistics.mean(lat) * 1e6 if lat else None
                parts = {k: out[f"{k}_s"] * 1e6 / n for k in ("read", "write", "binding")}
                bd[f"{backend}/0/register/{v}"] = {
                    "backend": backend, "size": 0, "op": "register", "variant": v,
                    "total_us": total, "read_us": parts["read"], "write_us": parts["write"],
                    "binding_us": parts["binding"],
                    "rest_us": max(0.0, total - sum(parts.values())) if total else None,
                    "reads": out["reads"] / n, "writes": out["writes"] / n, "binding_calls": out["binding_calls"] / n,
                    "by_store": {k: c / n for k, c in (out.get("by_store") or {}).items()},
                    "server_cpu_us": out["cpu_s"] * 1e6 / n, "registrations": len(lat),
                }


def soak_figure(bench, filler, pending, count, concurrency, deadline_s, result):
    """Ours: `pending` invites on internal storage, then `count` registrations with them (or as
    many as start within deadline_s)."""
    t0 = time.monotonic()
    tokens = filler.fill_to(pending)
    bench.call(SOAK, "gc")
    mem_start = bench.memory()
    heap_start = bench.call(SOAK, "gc")["lua_memory_kib"]
    run_id = int(time.time()) % 100000
    jobs = [(tok, f"s{run_id}n{i}") for i, tok in enumerate(tokens[:count])]
    bench.call(SOAK, "monitor_start", interval=0.005)
    wall, lat, fails = asyncio.run(register_all(bench.server.c2s_port, SOAK, jobs, concurrency, deadline_s))
    stall = bench.call(SOAK, "monitor_stop")
    heap_end = bench.call(SOAK, "gc")["lua_memory_kib"]
    mem_end = bench.memory()
    if fails:
        log(f"    soak: {len(fails)} failures, e.g. {fails[:2]}")
    result["soak"] = {
        "variant": "ours", "backend": "internal", "pending": pending, "registrations": len(lat),
        "planned": count, "deadline_s": deadline_s,
        "failures": len(fails), "concurrency": concurrency, "seconds": round(wall, 1),
        "registrations_per_s": len(lat) / wall if wall else None,
        "p50_ms": percentile(lat, 0.5) * 1e3 if lat else None, "p99_ms": percentile(lat, 0.99) * 1e3 if lat else None,
        "stall_max_ms": stall.get("longest_handler_ms"), "stalls_over_50ms": stall.get("handlers_over_50ms"),
        "handlers": stall.get("handlers"),
        "timer_lateness_ms": {"max": stall.get("max_ms"), "p99": stall.get("p99_ms"), "n": stall.get("n")},
        "rss_mib": {"start": mem_start["VmRSS"], "end": mem_end["VmRSS"]},
        "lua_heap_kib": {"start": heap_start, "end": heap_end},
    }
    s = result["soak"]
    log(f"  soak: {len(lat)} registrations with {pending} pending in {wall:.1f}s ({s['registrations_per_s']:.1f}/s), "
        f"longest handler {s['stall_max_ms']:.1f} ms, RSS {mem_start['VmRSS']:.1f} -> {mem_end['VmRSS']:.1f} MiB "
        f"({time.monotonic() - t0:.1f}s)")


def rss_figure(root, size, result):
    """Fresh stock and ours servers (internal storage only): peak RSS while create_account() and
    get() run at N=size. Also one timed sample of each: stock's only figures beyond 10 000."""
    out = {}
    for v in ("stock", "ours"):
        t0 = time.monotonic()
        workdir = root / f"rss-{v}"
        workdir.mkdir()
        bench = make_server(v, workdir, None, hosts=[INT])
        bench.server.start()
        try:
            start = bench.memory()
            filler = Filler(bench, INT, "internal", None)
            filler.fill_to(size)
            bench.call(INT, "gc")
            bench.reset_peak()
            opts = {"min_iters": 1, "max_iters": 1, "budget": 0}
            m = bench.call(INT, "measure", ops=["get", "create_account"], opts={"get": opts, "create_account": opts})
            mem = bench.memory()
            out[v] = {"rss_start_mib": start["VmRSS"], "peak_mib": mem["VmHWM"],
                      "get_us": m["get"]["median_us"], "create_account_us": m["create_account"]["median_us"]}
        finally:
            bench.server.stop()
        log(f"  rss {v} N={size}: peak {out[v]['peak_mib']:.1f} MiB ({time.monotonic() - t0:.1f}s)")
    result["rss"] = {"size": size, **out, "ratio": ratio(out["ours"]["peak_mib"], out["stock"]["peak_mib"])}


# --------------------------------------------------------------------------- report

def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    if m:
        mem_kib = int(m.group(1))
    try:
        if prosody_host.prosodyctl_bin() == "prosodyctl":  # the system's: the Debian package's version
            version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "prosody"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
        else:  # target/prosody13: the package version tools/prosody13.sh recorded
            stamp = prosody_host.PROSODY13_ROOT.parent / "stamp"
            m = re.search(r"\bprosody=(\S+)", stamp.read_text()) if stamp.is_file() else None
            version = m.group(1) if m else ""
        version = version or prosody_host.prosody_version_string()
    except (OSError, subprocess.TimeoutExpired, prosody_host.ServerError):
        version = ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 1048576, 1) if mem_kib else None,
            "kernel": platform.release(), "prosody": version or "unknown", "python": platform.python_version()}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "load average: " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt_us(value):
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:,.1f} µs"
    if value < 1e6:
        return f"{value / 1000:,.2f} ms"
    return f"{value / 1e6:,.2f} s"


def fmt_ratio(value):
    return "—" if value is None else f"{value:.2f}"


def render(rows, header) -> list[str]:
    rows = [header] + rows
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(rows):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def api_table(result) -> list[str]:
    rows = []
    for e in result.get("api", {}).values():
        rows.append((f"{BACKEND_NAMES[e['backend']]:10} N={e['size']:<7,} {OP_NAMES[e['op']]}",
                     fmt_us(e.get("stock")), fmt_us(e.get("ours")), fmt_us(e.get("ours_stock")),
                     fmt_ratio(e["ratio"].get("ours")), fmt_ratio(e["ratio"].get("ours_stock"))))
    return render(rows, ("operation (median)", "stock", "ours", "ours, stock layout", "ours/stock",
                         "stock layout/stock"))


def reg_table(result) -> list[str]:
    rows = []
    for e in result.get("reg", {}).values():
        unit = {"rps": "registrations/s", "p50_ms": "latency p50 ms", "p99_ms": "latency p99 ms"}[e["metric"]]
        rows.append((f"{BACKEND_NAMES[e['backend']]:10} c={e['concurrency']:<3} {unit}",
                     *(f"{e[v]:,.1f}" if e.get(v) is not None else "—" for v in REG_VARIANTS),
                     fmt_ratio(e["ratio"].get("ours")), fmt_ratio(e["ratio"].get("ours_stock")),
                     fmt_ratio(e["ratio"].get("aa"))))
    return render(rows, ("registrations", "stock", "ours", "ours, stock layout", "stock A/A", "ours/stock",
                         "stock layout/stock", "A/A"))


def breakdown_table(result) -> list[str]:
    rows = []
    for e in result.get("breakdown", {}).values():
        op = OP_NAMES.get(e["op"], "one registration (c=1)")
        rows.append((f"{BACKEND_NAMES[e['backend']]:10} N={e['size']:<6,} {op:24} {SHORT[e['variant']]}",
                     fmt_us(e.get("total_us")), fmt_us(e.get("read_us")), fmt_us(e.get("write_us")),
                     fmt_us(e.get("binding_us")), fmt_us(e.get("rest_us")),
                     f"{e.get('reads', 0):g} / {e.get('writes', 0):g}"))
    lines = render(rows, ("breakdown (median per call; registration: mean)", "total", "storage reads",
                          "storage writes", "binding", "rest", "reads / writes"))
    for e in result.get("breakdown", {}).values():
        if e.get("by_store"):
            per_store = ", ".join(f"{k} {c:g}" for k, c in sorted(e["by_store"].items()))
            lines.append(f"  {BACKEND_NAMES[e['backend']]} registration, {SHORT[e['variant']]}, per store: {per_store}")
    return lines


def targets(result) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, ratio or note, passed) for every target of issue 19."""
    out = []
    api = result.get("api", {})
    limits = {"create_account": 1000, "get": 50, "get_use": 2000}
    sizes = sorted({e["size"] for e in api.values() if e["backend"] == "internal"})
    for op, limit in limits.items():
        for size in [s for s in sizes if s >= 1000]:
            e = api.get(f"internal/{size}/{op}")
            if e and e.get("ours") is not None:
                out.append((f"internal N={size:,} {OP_NAMES[op]} ≤ {fmt_us(limit)}", fmt_us(e["ours"]),
                            f"stock {fmt_us(e.get('stock'))}" if e.get("stock") is not None else "stock not run",
                            e["ours"] <= limit))
        if sizes:
            lo, hi = api.get(f"internal/0/{op}"), api.get(f"internal/{sizes[-1]}/{op}")
            if lo and hi and sizes[-1] > 0:
                r = ratio(hi["ours"], lo["ours"])
                out.append((f"internal {OP_NAMES[op]} N={sizes[-1]:,} ≤ 1.5× N=0", f"{fmt_us(hi['ours'])} / {fmt_us(lo['ours'])}",
                            f"{fmt_ratio(r)}×", r is not None and r <= 1.5))
    for backend in BACKEND_NAMES:
        for op in ("create_account", "get_use"):
            e = api.get(f"{backend}/0/{op}")
            if e:
                r = e["ratio"].get("ours")
                out.append((f"{BACKEND_NAMES[backend]} N=0 {OP_NAMES[op]} ≤ 1.05× stock",
                            f"{fmt_us(e['ours'])} vs {fmt_us(e['stock'])}", f"{fmt_ratio(r)}×", r is not None and r <= 1.05))
        for c in (1, 20):
            e = result.get("reg", {}).get(f"{backend}/c{c}/rps")
            if e:
                r = e["ratio"].get("ours")
                out.append((f"{BACKEND_NAMES[backend]} registrations/s c={c} ≥ 1.0× stock",
                            f"{e['ours']:,.1f} vs {e['stock']:,.1f}/s",
                            f"{fmt_ratio(r)}× (A/A {fmt_ratio(e['ratio'].get('aa'))}×)", r is not None and r >= 1.0))
    s = result.get("soak")
    if s:
        out.append((f"soak ({s['pending']:,} pending) ≥ 100 registrations/s", f"{s['registrations_per_s']:,.1f}/s",
                    f"{s['registrations']:,} registrations, c={s['concurrency']}", s["registrations_per_s"] >= 100))
        out.append(("soak: no event-loop stall over 50 ms", f"longest handler {s['stall_max_ms']:,.1f} ms",
                    f"{s['stalls_over_50ms']} of {s['handlers']:,} handlers over 50 ms", s["stall_max_ms"] <= 50))
        grow = s["rss_mib"]["end"] - s["rss_mib"]["start"]
        out.append(("soak: RSS end ≤ start + 10 MiB", f"{s['rss_mib']['start']:,.1f} → {s['rss_mib']['end']:,.1f} MiB",
                    f"{grow:+.1f} MiB", grow <= 10))
    r = result.get("rss")
    if r:
        out.append((f"peak RSS at N={r['size']:,} ≤ stock + 10 MiB",
                    f"{r['ours']['peak_mib']:,.1f} vs {r['stock']['peak_mib']:,.1f} MiB",
                    f"{r['ours']['peak_mib'] - r['stock']['peak_mib']:+.1f} MiB",
                    r["ours"]["peak_mib"] <= r["stock"]["peak_mib"] + 10))
    return out


def targets_table(result) -> list[str]:
    rows = [(t, m, n, "PASS" if ok else "MISS") for t, m, n, ok in targets(result)]
    return render(rows, ("target (ours = default layout)", "measured", "ratio / note", ""))


def report_lines(result) -> list[str]:
    m = result["machine"]
    lines = [f"make bench, {result['date']}: {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB, "
             f"kernel {m['kernel']}, Prosody {m['prosody']}",
             f"uptime before: {result.get('uptime_before')}", f"uptime after:  {result.get('uptime_after')}",
             f"rounds: {result['rounds']} interleaved (rotating order); value = median over rounds of each round's median; "
             f"a variant whose get()+:use() took over {SLOW_US / 1000:g} ms at the previous N: one round of two samples",
             f"stock and ours with the stock layout stop at N={STOCK_MAX:,} (every call parses the whole invite map "
             f"on internal storage: seconds per call beyond); servers' data on {result.get('data_dir', 'disk')}; "
             f"PostgreSQL runs with fsync=off (spec/e2e/postgres.py)"]
    if result.get("api"):
        lines += ["", "API cost per call, live invites N:"] + api_table(result)
        for key, why in sorted(result.get("api_stopped", {}).items()):
            backend, v = key.split("/")
            lines.append(f"  {LABELS[v]} on {BACKEND_NAMES[backend]}: {why}")
    if result.get("reg"):
        lines += ["", "Invite registrations over loopback (pre-auth + in-band registration), N=0:"] + reg_table(result)
    if result.get("breakdown"):
        lines += ["", "Where the time goes (storage = the storage driver's calls; binding = invites_core.so methods; "
                  "rest = Lua, Prosody, network for a registration):"] + breakdown_table(result)
    s = result.get("soak")
    if s:
        cut = (f" (of {s['planned']:,} planned: stopped starting new ones after {s['deadline_s']} s)"
               if s.get("planned") and s["registrations"] + s["failures"] < s["planned"] else "")
        lines += ["", f"Soak (ours, internal, {s['pending']:,} pending invites): {s['registrations']:,} registrations{cut} at "
                  f"c={s['concurrency']} in {s['seconds']} s = {s['registrations_per_s']:,.1f}/s, p50 {s['p50_ms']:,.1f} ms, "
                  f"p99 {s['p99_ms']:,.1f} ms, worst stall (longest connection handler) {s['stall_max_ms']:,.1f} ms "
                  f"({s['stalls_over_50ms']} over 50 ms; a 5 ms timer's worst lateness, queueing included: "
                  f"{s['timer_lateness_ms']['max']:,.1f} ms), RSS {s['rss_mib']['start']:,.1f} → "
                  f"{s['rss_mib']['end']:,.1f} MiB, Lua heap {s['lua_heap_kib']['start']:,.0f} → "
                  f"{s['lua_heap_kib']['end']:,.0f} KiB, {s['failures']} failures"]
    r = result.get("rss")
    if r:
        lines += ["", f"Peak RSS at N={r['size']:,} (fresh servers, internal, create_account() + get()): stock "
                  f"{r['stock']['peak_mib']:,.1f} MiB (get {fmt_us(r['stock']['get_us'])}, create_account "
                  f"{fmt_us(r['stock']['create_account_us'])}, one sample each), ours {r['ours']['peak_mib']:,.1f} MiB "
                  f"(get {fmt_us(r['ours']['get_us'])}, create_account {fmt_us(r['ours']['create_account_us'])})"]
    lines += ["", "Targets (issue 19):"] + targets_table(result)
    for impl, errs in result.get("server_errors", {}).items():
        lines.append(f"warning: {impl} server logged errors, e.g. {errs[0]}")
    return lines


def chart(result, path: Path) -> str | None:
    """Log-log cost per call against live invites, one panel per operation."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (make venv installs it from requirements-test.txt)"
    api = result.get("api", {})
    if not api:
        return "no API figures"
    colours = {"stock": "#d62728", "ours": "#1f77b4", "ours_stock": "#ff7f0e"}
    styles = {"internal": ("-", "o"), "sql": ("--", "s"), "postgres": (":", "^")}
    zero_at = 10  # log axes have no 0: N=0 is drawn at 10 and labelled 0
    sizes = sorted({e["size"] for e in api.values() if e["size"] > 0} | ({result["rss"]["size"]} if result.get("rss") else set()))
    ticks = [zero_at] + sizes
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), sharex=True)
    for ax, op in zip(axes, OPS):
        for backend, (ls, marker) in styles.items():
            for v in VARIANTS:
                pts = sorted((e["size"], e[v]) for e in api.values()
                             if e["op"] == op and e["backend"] == backend and e.get(v) is not None)
                if not pts:
                    continue
                xs = [max(n, zero_at) for n, _ in pts]
                ax.plot(xs, [y / 1000 for _, y in pts], ls=ls, marker=marker, color=colours[v], ms=4,
                        label=f"{LABELS[v]}, {BACKEND_NAMES[backend]}")
        rss = result.get("rss")
        key = {"create_account": "create_account_us", "get": "get_us"}.get(op)
        if rss and key and rss["stock"].get(key):
            ax.plot([rss["size"]], [rss["stock"][key] / 1000], marker="x", color=colours["stock"], ls="none",
                    ms=8, label=f"stock, internal, N={rss['size']:,} (one sample)")
        limit = {"create_account": 1.0, "get": 0.05, "get_use": 2.0}[op]
        ax.axhline(limit, color="grey", lw=0.8, ls="-.")
        ax.text(zero_at, limit, " target, internal", color="grey", fontsize=7, va="bottom")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0"] + [f"{n:,}".replace(",", " ") for n in sizes])
        ax.minorticks_off()
        ax.set_title(OP_NAMES[op])
        ax.set_xlabel("live invites N")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("ms per call (median)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    m = result["machine"]
    fig.suptitle(f"make bench {result['date'][:10]}: cost per call vs live invites ({m['nproc']} CPUs, Prosody {m['prosody']})")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- main


def save(result, path) -> Path:
    """Writes the results so far (after each figure: an interrupted run keeps what it measured)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return out


def on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally that stops every server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke run of the bench)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick 1)")
    parser.add_argument("--figures", default="api,reg,soak,rss", help="comma-separated subset of api,reg,soak,rss")
    parser.add_argument("--json", default=str(JSON_PATH), help="where to write the results (target/bench.json)")
    parser.add_argument("--chart", default=str(CHART_PATH), help="where to write the chart (docs/bench.png; '' for none)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories")
    parser.add_argument("--disk", action="store_true",
                        help="the servers' data on the temporary directory's disk instead of /dev/shm (SQLite then "
                             "pays its commit fsync, and other processes' disk traffic shows in the figures)")
    parser.add_argument("--prosody", choices=["12", "13"], default="12",
                        help="which Prosody: 12, the system's (default), or 13, target/prosody13 (make prosody13)")
    parser.add_argument("--ours-plugins", metavar="DIR",
                        help="our plugin directory (default: $INVITES_PLUGIN_DIR or target/plugins)")
    parser.add_argument("--postgres", choices=["auto", "yes", "no"], default="auto",
                        help="the pg.bench host on a private PostgreSQL: auto (when installed, default), yes, no")
    parser.add_argument("--report", metavar="JSON", help="print the tables of an earlier run's JSON file (and redraw "
                        "the chart with --chart) and exit")
    args = parser.parse_args()
    if args.report:
        result = json.loads(Path(args.report).read_text())
        print("\n".join(report_lines(result)))
        if args.chart:
            err = chart(result, Path(args.chart))
            print(f"chart: {err or args.chart}")
        return 0
    figures = {f.strip() for f in args.figures.split(",") if f.strip()}
    unknown = figures - {"api", "reg", "soak", "rss"}
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    rounds = args.rounds or (1 if args.quick else 3)
    if rounds < 1:
        parser.error("--rounds must be at least 1")

    try:
        prosody_host.use_host(args.prosody)
    except prosody_host.ServerError as e:
        log(str(e))
        return 2
    if args.ours_plugins:
        os.environ["INVITES_PLUGIN_DIR"] = str(Path(args.ours_plugins).resolve())
    plugins = prosody_host.plugin_dir()
    if not (plugins / "mod_invites.lua").is_file():
        log(f"{plugins}/mod_invites.lua is missing: run `make plugins` first")
        return 2

    if args.quick:
        sizes, breakdown_sizes = [0, 100, 1000], {0}
        reg_plan, breakdown_regs, reg_deadline = [(1, 10), (20, 40)], 5, 2
        soak_pending, soak_count, soak_deadline, rss_size = 1000, 200, 20, 2000
    else:
        sizes, breakdown_sizes = [0, 1000, 10000, 100000], {0, 1000}
        reg_plan, breakdown_regs, reg_deadline = [(1, 30), (20, 80)], 20, 3
        soak_pending, soak_count, soak_deadline, rss_size = 10000, 2000, 60, 100000

    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    result = {
        "command": "make bench" + (f" PROSODY={args.prosody}" if args.prosody != "12" else "")
                   + (" (--quick)" if args.quick else ""),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "uptime_before": uptime(),
        "rounds": rounds,
        "sizes": sizes,
        "stock_max": STOCK_MAX,
    }
    # tmpfs by default: the figures measure the modules, not a disk shared with other processes
    # (internal storage never fsyncs on 0.12 and the private PostgreSQL runs with fsync=off anyway).
    shm = Path("/dev/shm")
    on_disk = args.disk or not (shm.is_dir() and os.access(shm, os.W_OK))
    root = Path(tempfile.mkdtemp(prefix="invites-bench-", dir=None if on_disk else shm))
    result["data_dir"] = f"disk ({tempfile.gettempdir()})" if on_disk else "tmpfs (/dev/shm)"
    benches: dict[str, Bench] = {}
    pg = None
    try:
        backends = {"internal": INT, "sql": SQL}
        pg_installed = postgres.available() and lua_dbi_postgresql()
        if args.postgres == "yes" or (args.postgres == "auto" and pg_installed):
            pg = postgres.PostgresServer().start()  # its own temporary directory: postgres must reach it
            backends["postgres"] = PG
            log(f"PostgreSQL: pid {pg.proc.pid}, 127.0.0.1:{pg.port} ({postgres.bin_dir()})")
        elif args.postgres == "auto":
            log("PostgreSQL or lua-dbi-postgresql not installed: no pg.bench (make deps installs them)")
        wanted = list(VARIANTS) + (["aa"] if "reg" in figures else [])
        if figures & {"api", "reg", "soak"}:
            for v in wanted:
                workdir = root / v
                workdir.mkdir()
                benches[v] = make_server(v, workdir, pg)
                benches[v].server.start()
            result["servers"] = {v: {**b.call(INT, "info"), "pid": b.server.pid} for v, b in benches.items()}
            log("servers: " + ", ".join(f"{v} pid {b.server.pid} ({result['servers'][v]['layout']})"
                                        for v, b in benches.items()) + f" in {root}")
            if result["servers"]["ours_stock"]["layout"] != "stock" or result["servers"]["ours"]["layout"] != "records":
                log("warning: the servers' layouts are not what the bench expects")
        fillers = {}
        for v, b in benches.items():
            for backend, host in backends.items():
                fillers[(v, host)] = Filler(b, host, backend, pg)
            fillers[(v, SOAK)] = Filler(b, SOAK, "internal", pg)
        # Registrations first: they run with no other invites live (N=0).
        if "reg" in figures:
            reg_figure(benches, backends, reg_plan, rounds, breakdown_regs, reg_deadline, result)
            save(result, args.json)
        if "api" in figures:
            api_figure(benches, fillers, backends, sizes, sizes[-1], rounds, args.quick, breakdown_sizes, result)
            save(result, args.json)
        if "soak" in figures:
            soak_figure(benches["ours"], fillers[("ours", SOAK)], soak_pending, soak_count, 20, soak_deadline, result)
            save(result, args.json)
        for v, b in benches.items():
            bad = b.server.tracebacks()
            if bad:
                result.setdefault("server_errors", {})[v] = bad[:20]
            b.server.stop()
        if "rss" in figures:
            rss_figure(root, rss_size, result)
    finally:
        for b in benches.values():
            b.server.stop()
        if pg is not None:
            if args.keep:
                pg.stop()
                log(f"kept {pg.dir}")
            else:
                pg.cleanup()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    result["uptime_after"] = uptime()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["table"] = report_lines(result)
    out = save(result, args.json)
    print("\n".join(result["table"]))
    if args.chart:
        err = chart(result, Path(args.chart))
        print(f"chart: {err or args.chart}")
    print(f"{result['seconds']} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
