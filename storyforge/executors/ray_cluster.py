"""Joining a Ray cluster: the address, token authentication, a bounded wait, and every failure said as what to do.

Ray's token authentication (Ray 2.5x and later): a cluster started with RAY_AUTH_MODE=token (or by `ray start
--head` when a token already exists on that machine) refuses every process that does not present its token. A
process presents one only when RAY_AUTH_MODE=token is set in its environment; the token itself comes from
RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH names, else ~/.ray/auth_token. Ray turns the mode on by itself
only for a cluster it finds on this machine (RAY_ADDRESS=auto); for an explicit address the driver must say so,
or the cluster answers "InvalidAuthToken" and Ray retries for a minute. Here it is one message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storyforge.errors import StoryforgeError

AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
# Ray tries to reach the cluster once a second for this many tries (its own default is a minute); the variable
# is Ray's, and a user who sets it keeps their value.
CONNECT_TRIES_VARIABLE, CONNECT_TRIES = "RAY_gcs_server_port_wait_time_s", 5
PROBE_SECONDS = 5.0  # an address where nothing listens is said at once, not after Ray's retries
# A local cluster's object store only ever holds a few encoded clips at once: keep it small, in /dev/shm.
OBJECT_STORE_BYTES = (128 << 20, 1 << 30)  # at least, at most
MIN_SHM_BYTES = 256 << 20  # below this free in /dev/shm (small containers), the object store lives in /tmp
HOW_TO_AUTH = (f"set {AUTH_MODE}=token and give this machine the cluster's token in {AUTH_TOKEN}, in a file named "
               f"by {AUTH_TOKEN_PATH}, or in ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")


class ClusterError(StoryforgeError):
    """The Ray cluster cannot be used: not reachable, refusing this process, or of another Ray version."""


def connect(ray: Any) -> bool:
    """Connect to RAY_ADDRESS's cluster, or start a local one; True when this call started Ray (and so stops it).

    A cluster that cannot be used is a ClusterError within seconds, never Ray's minute of retries.
    """
    if ray.is_initialized():  # the caller connected already (a notebook, the tests): use that cluster
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    address = os.environ.get("RAY_ADDRESS", "").strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Ray's notice about accelerator variables, not ours
        if not address:
            _token_for_this_process()
            with _quiet_auth_notice():
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet,
                         **object_store())
            return True
        try:
            if address == "auto":
                found = _auto_address()
                if found:
                    probe(found, "found by RAY_ADDRESS=auto")
            elif not address.startswith("ray://"):
                probe(address)
            with _few_tries():
                ray.init(**quiet)
        except ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - sorted into what the user can do; anything else goes on
            explained = explain(error, address)
            if explained is None:
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            raise explained from None
    return True


def describe(ray: Any) -> str:
    """`the Ray cluster at HOST:PORT (2 nodes, 4 CPUs, 1 GPU)`: where a render ran, for its notices."""
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    address = ray.get_runtime_context().gcs_address
    return f"the Ray cluster at {address} ({_count(nodes, 'node')}, {_count(cpus, 'CPU')}, {_count(gpus, 'GPU')})"


def probe(address: str, how: str = "RAY_ADDRESS") -> None:
    """A ClusterError at once when nothing listens at `address` (host:port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"RAY_ADDRESS={address} is not an address of a Ray cluster; give the head node's "
                           "HOST:PORT (`ray start --head` prints it), or `auto` for a cluster started on this machine")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({how}): {reason}; start it with `ray "
                           f"start --head --port={port}` on {host}, or check the address, the port and the firewall, "
                           "or unset RAY_ADDRESS to render on a Ray cluster started on this machine") from None


def _auto_address() -> str | None:
    """The address RAY_ADDRESS=auto stands for (the cluster `ray start` last started here), None when Ray cannot
    say; Ray's own error when there is none (explain reads it)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # a Ray without it: ray.init finds the cluster itself
        return None
    return str(canonicalize_bootstrap_address_or_die("auto"))


def explain(error: BaseException, address: str) -> ClusterError | None:
    """What a failed ray.init means for the user, or None when it is not a cluster problem (a bug: raised)."""
    text = _chain_text(error)
    if "no authentication token was found" in text:
        return ClusterError(f"{AUTH_MODE}=token is set but this machine has no Ray token: {HOW_TO_AUTH}")
    if "InvalidAuthToken" in text or "Unauthenticated" in text:
        if os.environ.get(AUTH_MODE, "").strip().lower() != "token":
            return ClusterError(f"the Ray cluster at {address} uses token authentication and this process sent no "
                                f"token: {HOW_TO_AUTH}")
        return ClusterError(f"the Ray cluster at {address} refused the token in {token_source()}: it is not the "
                            "token the cluster was started with; copy that one (`ray get-auth-token` on the head "
                            "node prints it)")
    mismatch = re.search(r"cluster was started with:\s*Ray: (\S+)\s*Python: (\S+)\s*This process.*?was started "
                         r"with:\s*Ray: (\S+)\s*Python: (\S+)", text, re.S)
    if mismatch:
        theirs_ray, theirs_py, ours_ray, ours_py = mismatch.groups()
        return ClusterError(f"the Ray cluster at {address} runs Ray {theirs_ray} on Python {theirs_py}, and this "
                            f"machine has Ray {ours_ray} on Python {ours_py}: every node and the machine running "
                            f"storyforge need the same versions (pip install 'ray=={theirs_ray}' here, on Python "
                            f"{theirs_py})")
    if "Could not find any running Ray instance" in text:
        return ClusterError("RAY_ADDRESS=auto but no Ray cluster runs on this machine: start one with `ray start "
                            "--head`, give the head node's HOST:PORT, or unset RAY_ADDRESS and storyforge starts "
                            "one for the render")
    if isinstance(error, ConnectionError) or "Failed to connect to GCS" in text:
        return ClusterError(f"cannot connect to the Ray cluster at {address} (RAY_ADDRESS): something listens "
                            "there but did not answer as a Ray cluster's head node; check the address and port "
                            "(`ray status` on the head node shows them)")
    return None


def token_source() -> str:
    """Where Ray takes this process's token from, in its own order."""
    if os.environ.get(AUTH_TOKEN):
        return AUTH_TOKEN
    if os.environ.get(AUTH_TOKEN_PATH):
        return f"{AUTH_TOKEN_PATH} ({os.environ[AUTH_TOKEN_PATH]})"
    return str(Path.home() / ".ray" / "auth_token")


def object_store() -> dict[str, Any]:
    """A modest object store, in /dev/shm when it has room (containers often give it 64 MB), else in /tmp."""
    try:
        stat = os.statvfs("/dev/shm")
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = 0
    low, high = OBJECT_STORE_BYTES
    if free < MIN_SHM_BYTES:
        return {"object_store_memory": low, "_plasma_directory": tempfile.gettempdir()}
    return {"object_store_memory": max(low, min(high, free // 4))}


def _token_for_this_process() -> None:
    """Token authentication for the cluster started here, without writing a token into the user's home.

    Ray turns it on for every cluster that ray.init() starts and, when this machine has no token, writes a new
    one to ~/.ray/auth_token; from then on `ray start --head` on this machine turns token authentication on too
    (what surprised the user in issue 17). A token of this process's own, in its environment (which the cluster
    it starts inherits), keeps the protection and leaves the home folder alone.
    """
    if os.environ.get(AUTH_MODE, "token").strip().lower() != "token" or os.environ.get(AUTH_TOKEN) \
            or os.environ.get(AUTH_TOKEN_PATH) or (Path.home() / ".ray" / "auth_token").exists():
        return
    import secrets

    os.environ[AUTH_TOKEN] = secrets.token_hex(32)  # kept for the process: a later cluster started here reuses it


@contextlib.contextmanager
def _quiet_auth_notice() -> Iterator[None]:
    """Ray's warning that token authentication is on: true for the cluster started here, and not the user's news."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notice.setLevel(level)


@contextlib.contextmanager
def _few_tries() -> Iterator[None]:
    if CONNECT_TRIES_VARIABLE in os.environ:
        yield
        return
    os.environ[CONNECT_TRIES_VARIABLE] = str(CONNECT_TRIES)
    try:
        yield
    finally:
        os.environ.pop(CONNECT_TRIES_VARIABLE, None)


def _chain_text(error: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(parts) < 8:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
