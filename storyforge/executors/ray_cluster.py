"""Joining a Ray cluster, or starting one on loopback: the address, token authentication, bounded waits, and every
failure said as what to do.

The cluster storyforge starts for itself (no RAY_ADDRESS) binds and talks on 127.0.0.1 only: Ray rewrites a node
address of 127.0.0.1 to the machine's interface address (and then listens on every interface) unless its own
switch RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is 0, which this module sets for the cluster it starts. `--ray-listen ADDR`
(STORYFORGE_RAY_LISTEN) opens that cluster on purpose at an address of this machine.

Every wait is bounded: the address is parsed first (a clear error for each wrong form), then a TCP connect and an
HTTP/2 handshake (what a head node's gRPC server answers at once) within PROBE_SECONDS and HANDSHAKE_SECONDS,
before Ray is asked.

Ray's token authentication (Ray 2.5x and later): a cluster started with RAY_AUTH_MODE=token (or by `ray start
--head` when a token already exists on that machine) refuses every process that does not present its token. A
process presents one only when RAY_AUTH_MODE=token is set in its environment; the token itself comes from
RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH names, else ~/.ray/auth_token. Ray turns the mode on by itself
only for a cluster it finds on this machine (RAY_ADDRESS=auto); for an explicit address the driver must say so,
or the cluster answers "InvalidAuthToken" and Ray retries for a minute. Here it is one message.
"""

from __future__ import annotations

import contextlib
import ipaddress
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
CONNECT_TRIES_VARIABLE, CONNECT_TRIES = "RAY_gcs_server_port_wait_time_s", 3
# How long each of those tries waits for the cluster's answer (Ray's default is 30 s); Ray reads it when it is
# imported, so it is set (unless the user set it) before storyforge imports Ray: see import_ray.
ANSWER_SECONDS_VARIABLE, ANSWER_SECONDS = "RAY_py_gcs_connect_timeout_s", 10
PROBE_SECONDS = 5.0  # the most a TCP connect to the address may take (a far network may be slow to answer)
# ... and its answer to a handshake, once connected: a gRPC server sends its SETTINGS frame as it accepts
HANDSHAKE_SECONDS = 1.5
# Ray's switch, read when ray is imported and by every process a node starts: 0 keeps a node on 127.0.0.1.
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LISTEN_VARIABLE = "STORYFORGE_RAY_LISTEN"  # what --ray-listen sets, for the API and for CI
LOOPBACK = "127.0.0.1"
# The client's first bytes on an HTTP/2 connection with prior knowledge, as gRPC speaks it without TLS (RFC 9113,
# 3.4), and an empty SETTINGS frame; a gRPC server answers with its own SETTINGS frame before anything else.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME = 4
# A local cluster's object store only ever holds a few encoded clips at once: keep it small, in /dev/shm.
OBJECT_STORE_BYTES = (128 << 20, 1 << 30)  # at least, at most
MIN_SHM_BYTES = 256 << 20  # below this free in /dev/shm (small containers), the object store lives in /tmp
HOW_TO_AUTH = (f"set {AUTH_MODE}=token and give this machine the cluster's token in {AUTH_TOKEN}, in a file named "
               f"by {AUTH_TOKEN_PATH}, or in ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")


class ClusterError(StoryforgeError):
    """The Ray cluster cannot be used: not reachable, refusing this process, or of another Ray version."""


QUIET = {"log_to_driver": False, "logging_level": logging.WARNING}


def import_ray() -> Any:
    """`import ray`, with a bounded wait for a cluster's answer when this import is Ray's first in the process."""
    import sys

    if "ray" not in sys.modules:
        os.environ.setdefault(ANSWER_SECONDS_VARIABLE, str(ANSWER_SECONDS))
    import ray

    return ray


def connect(ray: Any, *, listen: str | None = None) -> bool:
    """Connect to RAY_ADDRESS's cluster, or start a local one; True when this call started Ray (and so stops it).

    The local one listens on 127.0.0.1 only, unless `listen` (or STORYFORGE_RAY_LISTEN) names an address of this
    machine to open it at. A cluster that cannot be used is a ClusterError within seconds, never Ray's minute of
    retries.
    """
    listen = check_listen(listen)
    if ray.is_initialized():  # the caller connected already (a notebook, the tests): use that cluster
        return False
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address in ("", "local"):  # `local` is Ray's word for "start one here"
        start_local(ray, listen=listen)
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Ray's notice about accelerator variables, not ours
        try:
            check_token()
            host = None
            if address == "auto":
                found = _auto_address()
                if found:
                    probe(found, "found by RAY_ADDRESS=auto")
                    host = parse_address(found)[0]
            else:
                probe(address)
                host = parse_address(address)[0]
            # Ray would rewrite a loopback address to this machine's interface address, where a cluster kept on
            # loopback does not listen: its switch keeps 127.0.0.1 as given (and this driver on it)
            on_loopback = host is not None and _is_loopback(host)
            with _few_tries(), _node_address(None) if on_loopback else contextlib.nullcontext():
                ray.init(**QUIET)
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


def check_listen(listen: str | None) -> str | None:
    """The address to open a self-started cluster at (`listen`, else STORYFORGE_RAY_LISTEN), checked before any
    work: an address of this machine, and no RAY_ADDRESS naming a cluster to join instead."""
    listen = listen if listen is not None else (os.environ.get(LISTEN_VARIABLE, "").strip() or None)
    if listen is None:
        return None
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address not in ("", "local"):
        raise ClusterError(f"--ray-listen {listen} opens the Ray cluster storyforge starts for itself, but "
                           f"RAY_ADDRESS={address} names a cluster to join; unset RAY_ADDRESS, or drop --ray-listen "
                           f"(and {LISTEN_VARIABLE})")
    return listen_address(listen)


def start_local(ray: Any, *, listen: str | None = None, num_cpus: int | None = None, **options: Any) -> None:
    """Start a Ray cluster on this machine for this process: on 127.0.0.1 only (every process it starts binds
    and connects there), or, with `listen`, at that address of this machine, where other nodes may join it."""
    node = listen_address(listen) if listen is not None else None
    if node is not None and _is_loopback(node):
        node = None  # loopback is the default, and Ray would rewrite 127.0.0.1 to the interface address
    _token_for_this_process()
    with warnings.catch_warnings(), _quiet_auth_notice(), _node_address(node):
        warnings.simplefilter("ignore", FutureWarning)  # Ray's notice about accelerator variables, not ours
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 **({"_node_ip_address": node} if node else {}), **{**QUIET, **object_store(), **options})
    if node is None:
        host = ray.get_runtime_context().gcs_address.rpartition(":")[0].strip("[]")
        if not _is_loopback(host):  # a Ray that ignores its switch: do not run exposed
            version = getattr(ray, "__version__", "?")
            ray.shutdown()
            raise ClusterError(f"Ray {version} started its cluster at {host}, not on {LOOPBACK}, although "
                               f"{LOOPBACK_VARIABLE}=0 asks it to; install the Ray version of the `ray` extra, or "
                               "open the cluster on purpose with --ray-listen ADDR")


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, an IPv4-mapped 127.x, or `localhost`."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def listen_address(listen: str) -> str:
    """`listen` checked: an IP address of this machine (where a Ray node can bind), else a ClusterError."""
    text = listen.strip()
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise ClusterError(f"--ray-listen {listen!r} is not an IP address; give this machine's address on the "
                           "network the other nodes share (e.g. 192.168.1.20), or leave it out to keep the cluster on "
                           f"{LOOPBACK}") from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        try:
            trial.bind((str(address), 0))
        except OSError as error:
            raise ClusterError(f"--ray-listen {address} is not an address of this machine "
                               f"({(error.strerror or str(error)).lower()}); give one of its own addresses (`ip "
                               "address` lists them)") from None
    return str(address)


@contextlib.contextmanager
def _node_address(node: str | None) -> Iterator[None]:
    """While Ray starts: its loopback switch on (node None) or off (a node at an address of this machine).

    The variable reaches every process the new node starts; Ray's own constant is read at `import ray`, which may
    have happened before (in this process), so it is set for the start too, and both are put back after.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray laid out otherwise: the variable alone, read by the processes it starts
        ray_constants = None
    saved_env = os.environ.get(LOOPBACK_VARIABLE)
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[LOOPBACK_VARIABLE] = "0" if node is None else "1"
    if ray_constants is not None:
        ray_constants.ENABLE_RAY_CLUSTER = node is not None
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop(LOOPBACK_VARIABLE, None)
        else:
            os.environ[LOOPBACK_VARIABLE] = saved_env
        if ray_constants is not None and saved is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved


def describe(ray: Any) -> str:
    """`the Ray cluster at HOST:PORT (2 nodes, 4 CPUs, 1 GPU)`: where a render ran, for its notices."""
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    address = ray.get_runtime_context().gcs_address
    return f"the Ray cluster at {address} ({_count(nodes, 'node')}, {_count(cpus, 'CPU')}, {_count(gpus, 'GPU')})"


def parse_address(address: str, how: str = "RAY_ADDRESS") -> tuple[str, int]:
    """(host, port) of a head node's address as RAY_ADDRESS gives it (HOST:PORT, [IPv6]:PORT, ray://HOST:PORT),
    or a ClusterError that says what is wrong with it and what to give instead."""
    shown = f"{how}={address}" if how == "RAY_ADDRESS" else f"{address} ({how})"
    give = ("give the head node's HOST:PORT (`ray start --head` prints it; 6379 unless --port said otherwise), or "
            "`auto` for a cluster started on this machine")
    rest = address
    scheme, separator, after = address.partition("://")
    if separator:
        if scheme != "ray":
            raise ClusterError(f"{shown} is a {scheme}:// address, not one of a Ray cluster; {give}"
                               + (" (port 8265 is Ray's dashboard, a web page)" if scheme.startswith("http") else ""))
        _client_installed(address)
        rest = after
    host, colon, port = rest.rpartition(":")
    if not colon or not host or any(char.isspace() or ord(char) < 32 for char in rest) or "/" in rest:
        raise ClusterError(f"{shown} is not an address of a Ray cluster; {give}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ClusterError(f"{shown} is not an address of a Ray cluster; {give}")
        host = host[1:-1]
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{shown}: the port must be a number from 1 to 65535, not '{port}'; {give}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})", host) or ".." in host:
            raise ClusterError(f"{shown}: '{host}' is not a host name or an IP address; {give}") from None
    return host, int(port)


def probe(address: str, how: str = "RAY_ADDRESS") -> None:
    """A ClusterError within seconds unless something at `address` accepts a connection and answers an HTTP/2
    handshake as a head node's gRPC server does (a silent server, garbage, or a web server are each said)."""
    host, port = parse_address(address, how)
    shown = f"{address} ({how})"
    try:
        connection = socket.create_connection((host, port), timeout=PROBE_SECONDS)
    except TimeoutError:
        raise ClusterError(f"cannot reach the Ray cluster at {shown}: no answer to a connection within "
                           f"{PROBE_SECONDS:g}s; check the address, the port and the firewall, or unset RAY_ADDRESS "
                           "to render on a Ray cluster started on this machine") from None
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ClusterError(f"cannot reach the Ray cluster at {shown}: {reason}; start it with `ray "
                           f"start --head --port={port}` on {host}, or check the address, the port and the firewall, "
                           "or unset RAY_ADDRESS to render on a Ray cluster started on this machine") from None
    with connection:
        if os.environ.get("RAY_USE_TLS", "").strip().lower() in ("1", "true"):
            return  # a TLS cluster answers a TLS handshake, which Ray makes with its certificates
        problem = _handshake_problem(connection)
    if problem:
        raise ClusterError(f"something listens at {shown} but {problem}, so it is not a Ray cluster's head node; "
                           "check the address and port (`ray status` on the head node shows them)")


def _handshake_problem(connection: socket.socket) -> str | None:
    """What was wrong with the answer to an HTTP/2 handshake on `connection`, or None when a SETTINGS frame came."""
    connection.settimeout(HANDSHAKE_SECONDS)
    try:
        connection.sendall(HTTP2_PREFACE)
        answer = b""
        while len(answer) < 9:  # a frame header: length (3), type, flags, stream (4)
            more = connection.recv(9 - len(answer))
            if not more:
                break
            answer += more
    except TimeoutError:
        return f"sent nothing within {HANDSHAKE_SECONDS:g}s of a handshake"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):  # closed before or while we spoke
        return "closed the connection without a handshake"
    except OSError as error:
        return f"broke the connection ({(error.strerror or type(error).__name__).lower()})"
    if answer.startswith(b"HTTP/"):
        return "answers HTTP/1 (a web server: Ray's dashboard is one, on port 8265)"
    if len(answer) < 9:
        return "closed the connection without a handshake" if not answer else "answered a handshake with garbage"
    if answer[3] != SETTINGS_FRAME or answer[5:9] != b"\x00\x00\x00\x00":
        return "answered a handshake with garbage"
    return None


def _client_installed(address: str) -> None:
    """A ray:// address (Ray Client) needs the `ray[client]` extra: said at once, not as Ray's ValueError."""
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:
        return
    if get_ray_client_dependency_error() is not None:
        import ray

        raise ClusterError(f"RAY_ADDRESS={address} connects through Ray Client, which needs the ray[client] extra: "
                           f"pip install 'ray[client]=={ray.__version__}', or give the head node's HOST:PORT "
                           "(without ray://) to join the cluster directly")


def check_token() -> None:
    """A token Ray would send (RAY_AUTH_MODE=token) that no cluster could accept is said before any connection:
    gRPC sends it as a header, so printable ASCII without spaces, and not empty."""
    if os.environ.get(AUTH_MODE, "").strip().lower() != "token":
        return
    source = token_source()
    token = os.environ.get(AUTH_TOKEN)
    if not token:
        path = Path(os.environ.get(AUTH_TOKEN_PATH) or Path.home() / ".ray" / "auth_token")
        try:
            with path.open("rb") as handle:
                raw = handle.read(4097)
        except OSError:
            return  # none there: Ray's own message, which explain() words
        token = raw.decode("utf-8", "replace")
    token = token.strip()
    if not token or len(token) > 4096 or not all(33 <= ord(char) < 127 for char in token):
        raise ClusterError(f"the Ray token in {source} is not a token (empty, too long, or holding spaces or "
                           "characters outside printable ASCII); copy it again from the head node (`ray "
                           "get-auth-token` prints it)")


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
    if "Ray Client requires pip package" in text:
        return ClusterError(f"RAY_ADDRESS={address} connects through Ray Client, which needs the ray[client] extra: "
                            "pip install 'ray[client]', or give the head node's HOST:PORT (without ray://) to join "
                            "the cluster directly")
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
