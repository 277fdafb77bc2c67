"""Two hosts on one machine: two network namespaces joined by a veth pair.

Host 1 (HOST1) runs the search and its chief; host 2 (HOST2) runs `automl worker` processes that
dial the chief over the veth link, which a test can cut and restore. Needs root and iproute2 (CI
has both); elsewhere `make_hosts` skips saying why (fails in CI, where a skip would hide a loss).
Driven only through `ip` and subprocesses: no automl module is imported here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

HOST1, HOST2 = "10.213.0.1", "10.213.0.2"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def missing(reason: str) -> None:
    """Skip where namespaces cannot be made, but fail in CI, which is root with iproute2."""
    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)


def cannot_make_namespaces() -> str | None:
    """Why this machine cannot make network namespaces, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs the tests as root)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to create network namespaces"
    return None


def namespaces() -> set[str]:
    """The names `ip netns list` shows now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@dataclass
class Hosts:
    ns1: str
    ns2: str
    link1: str  # host 1's end of the veth pair

    def run(self, ns: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start `argv` inside namespace `ns`, stdout and stderr together as text."""
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def cut(self) -> None:
        """Take host 1's end of the link down: neither side hears the other."""
        sh("ip", "-n", self.ns1, "link", "set", self.link1, "down")

    def restore(self) -> None:
        sh("ip", "-n", self.ns1, "link", "set", self.link1, "up")

    def pids(self) -> list[int]:
        """Every process still running inside either namespace."""
        found = []
        for ns in (self.ns1, self.ns2):
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            found += [int(p) for p in out.stdout.split()]
        return found


@contextlib.contextmanager
def make_hosts() -> Iterator[Hosts]:
    """Two fresh namespaces with HOST1 and HOST2 on a veth pair; on exit everything still running
    inside is SIGKILLed and both namespaces are deleted (the veth goes with them)."""
    why = cannot_make_namespaces()
    if why:
        missing(why)
    tag = secrets.token_hex(3)  # unique per test run; interface names stay <= 15 characters
    ns1, ns2, v1, v2 = f"am{tag}h1", f"am{tag}h2", f"am{tag}v1", f"am{tag}v2"
    made = []
    try:
        for ns in (ns1, ns2):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", v1, "type", "veth", "peer", "name", v2)
        for ns, dev, addr in ((ns1, v1, HOST1), (ns2, v2, HOST2)):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
    except subprocess.CalledProcessError as exc:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        missing(f"cannot create network namespaces here: {exc.stderr.strip()}")
    hosts = Hosts(ns1, ns2, v1)
    try:
        yield hosts
    finally:
        for pid in hosts.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        for ns in (ns1, ns2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
