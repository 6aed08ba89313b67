#!/usr/bin/env python3
"""What telling the inviter costs a registration: N registrations in a loop, each with a contact
invite (;ibr=y) that a local account made (so every one is a notification to send), timed from
the pre-auth to the registration's answer, on one or more plugin directories, interleaved.

    .venv/bin/python bench/notify_cost.py [--n 200] [--rounds 3] NAME=PLUGIN_DIR[:OPTION=VALUE] ...

e.g. base=/tmp/base/target/plugins ours=target/plugins ours-off=target/plugins:invites_notify_inviter=false
Prints the median registrations/s of each over the rounds, and the server's CPU time per
registration (notification included: it is sent from a timer just after). Loopback only, stops by itself.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spec" / "e2e"))

import rawxmpp  # noqa: E402
from prosody import ProsodyServer  # noqa: E402
from prosody_config import DEFAULT_MODULES  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (less disturbed by a busy machine than wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(plugins: str, options: dict, n: int, base: Path, tag: str) -> tuple[float, float]:
    os.environ["INVITES_PLUGIN_DIR"] = plugins
    srv = ProsodyServer(base / tag, hosts={"localhost": {"allow_user_invites": True, **options}},
                        modules=[*DEFAULT_MODULES, "offline"], name=tag)
    srv.start()
    try:
        srv.api("create_user", "alice", "pw")
        tokens = [srv.api1("create_contact", "alice", True)["token"] for _ in range(n)]
        cpu_before = cpu_seconds(srv.pid)
        started = time.perf_counter()
        for i, token in enumerate(tokens):
            with rawxmpp.open_stream(srv) as raw:
                assert raw.preauth(token).get("type") == "result"
                assert raw.register(f"u{i}", "pw").get("type") == "result"
        took = time.perf_counter() - started
        time.sleep(1)  # the deferred notifications go out (their cost counts in the CPU time)
        cpu = cpu_seconds(srv.pid) - cpu_before
        return n / took, cpu / n * 1000
    finally:
        srv.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    variants = []
    for spec in args.variants:
        name, rest = spec.split("=", 1)
        plugins, *opts = rest.split(":")
        options = {}
        for opt in opts:
            key, value = opt.split("=", 1)
            options[key] = {"true": True, "false": False}.get(value, value)
        variants.append((name, str(Path(plugins).resolve()), options))
    rates = {name: [] for name, _, _ in variants}
    cpus = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="notify-cost-") as tmp:
        for r in range(args.rounds):
            for name, plugins, options in variants:
                rate, cpu = one_round(plugins, options, args.n, Path(tmp), f"{name}-{r}")
                rates[name].append(rate)
                cpus[name].append(cpu)
                print(f"round {r + 1} {name}: {rate:.1f} registrations/s, server CPU {cpu:.2f} ms each", flush=True)
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.1f} registrations/s ({', '.join(f'{v:.1f}' for v in values)}); "
              f"server CPU median {statistics.median(cpus[name]):.2f} ms per registration "
              f"({', '.join(f'{v:.2f}' for v in cpus[name])})")


if __name__ == "__main__":
    main()
