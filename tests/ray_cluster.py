"""A real Ray cluster for tests, started as the README says: `ray start --head` on this machine's loopback address
with token authentication, and a second node joining it with `ray start --address`; stopped by process group.

All of it stays on loopback (issue 27): Ray rewrites a node address of 127.0.0.1 to the machine's interface address
unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps the head and the drivers on 127.0.0.1 (and only a node at
exactly 127.0.0.1 binds its servers to loopback; at 127.0.0.2 they bind every interface). `ray start --address`
refuses that switch for a node joining a cluster ("multi-node clusters are not supported on Windows and OSX"), so
a joining node is started through JOIN: `ray start` with Ray's rewriting of 127.0.0.1 turned off in that process
and the switch set for every process the node starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# `ray start` for a node joining the head on 127.0.0.1, kept there (see the module's docstring)
JOIN = ("import os, sys\n"
        "from ray._private import services\n"
        "services.resolve_ip_for_localhost = lambda host: host  # 127.0.0.1 as given, not the interface address\n"
        f"os.environ['{LOOPBACK_VARIABLE}'] = '0'  # read by every process this node starts\n"
        "from ray.scripts.scripts import main\n"
        "sys.argv[0] = 'ray'\n"
        "main()\n")
START_SECONDS = 180  # two cores shared with other work: a Ray node can take a minute to come up


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """A head (and perhaps more nodes) started here; `env` is what a driver needs to use it by address."""

    folder: Path
    address: str
    token_file: Path
    base_env: dict[str, str]
    nodes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The README's driver environment: the head's address, token mode on, the token's file; and Ray's switch
        that keeps a driver on 127.0.0.1 (without it a driver takes the interface address and nodes call it there)."""
        return {**self.base_env, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.token_file), LOOPBACK_VARIABLE: "0"}

    def start_node(self, *arguments: str, head: bool = False) -> None:
        name = f"node{len(self.nodes)}"
        log = self.folder / f"{name}.log"
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        options = [item for option in ports for item in (option, str(free_port()))]
        ray = [RAY] if head else [sys.executable, "-c", JOIN]
        command = [*ray, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats",
                   "--object-store-memory=100000000", *options, *arguments]
        if head:
            command += ["--head", f"--port={self.address.rpartition(':')[2]}", f"--temp-dir={self.folder / 'ray'}",
                        "--include-dashboard=false"]
        else:
            command += [f"--address={self.address}"]
        with log.open("wb") as handle:  # its own session: the finalizer stops the node and all it started at once
            # each node has a home of its own, as on separate machines (the token is there too, as the README says)
            # (a joining node's switch is set by JOIN, after `ray start` has checked it)
            node = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                    env={**self.env, "HOME": str(self.token_file.parent.parent),
                                         LOOPBACK_VARIABLE: "0" if head else "1"},
                                    start_new_session=True)
        self.nodes.append(node)
        deadline = time.monotonic() + START_SECONDS
        while b"Ray runtime started" not in log.read_bytes():
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`{' '.join(command)}` did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to each node's process group (`ray start --block` takes its processes down), then SIGKILL."""
        for node in reversed(self.nodes):
            _signal_group(node, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in reversed(self.nodes):
            try:
                node.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(node, signal.SIGKILL)  # whatever of the group is left (workers, agents)
            try:
                node.wait(5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(node: subprocess.Popen, which: signal.Signals) -> None:
    try:
        os.killpg(node.pid, which)
    except ProcessLookupError:
        pass


def start_cluster(base_env: dict[str, str], nodes: int = 2) -> Cluster:
    """A head on 127.0.0.1 at a free port with a fresh token, and `nodes - 1` more nodes joined to it."""
    folder = Path(tempfile.mkdtemp(prefix="sfray-"))  # short: Ray's socket paths must fit in 107 bytes
    home = folder / "home"  # `ray get-auth-token --generate` writes ~/.ray/auth_token: this folder's, not the user's
    home.mkdir()
    done = subprocess.run([RAY, "get-auth-token", "--generate"], env={**base_env, "HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ray get-auth-token --generate failed: {done.stderr}")
    cluster = Cluster(folder, f"127.0.0.1:{free_port()}", home / ".ray" / "auth_token", base_env)
    try:
        cluster.start_node(head=True)
        for _ in range(nodes - 1):
            cluster.start_node()
    except BaseException:
        cluster.stop()
        raise
    return cluster
