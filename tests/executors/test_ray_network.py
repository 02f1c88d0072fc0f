"""Bounded waits for Ray (issue 20, item 8): every form of RAY_ADDRESS is parsed with a clear error, and an address
where something listens that is not a Ray head node (silent, garbage, a web server, a closed door) is one message
and exit 1 within seconds, not Ray's minutes of retries; a token no cluster could accept is said before any
connection; and --ray-listen (issue 27) takes only an address of this machine. Test servers listen on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from fake_heads import server

from storyforge.executors.ray_cluster import ClusterError, check_token, listen_address, parse_address, probe

GIVE = ("give the head node's HOST:PORT (`ray start --head` prints it; 6379 unless --port said otherwise), or `auto` "
        "for a cluster started on this machine")
CHECK = "so it is not a Ray cluster's head node; check the address and port (`ray status` on the head node shows them)"
STORY = """\
storyforge: 1
title: Net
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a fox
        duration: 9f
"""




@pytest.mark.parametrize(("kind", "problem"), [
    ("silent", "sent nothing within 1.5s of a handshake"),
    ("garbage", "answered a handshake with garbage"),
    ("http", "answers HTTP/1 (a web server: Ray's dashboard is one, on port 8265)"),
    ("close", "closed the connection without a handshake"),
])
def test_something_that_is_not_a_head_node_is_said_within_seconds(kind: str, problem: str) -> None:
    with server(kind) as port, pytest.raises(ClusterError) as caught:
        probe(f"127.0.0.1:{port}")
    assert str(caught.value) == f"something listens at 127.0.0.1:{port} (RAY_ADDRESS) but {problem}, {CHECK}"


def test_a_server_that_answers_the_handshake_as_grpc_does_is_let_through() -> None:
    with server("grpc") as port:
        probe(f"127.0.0.1:{port}")
        probe(f"[::ffff:127.0.0.1]:{port}") if socket.has_ipv6 else None


@pytest.mark.parametrize(("address", "message"), [
    ("head-node", f"RAY_ADDRESS=head-node is not an address of a Ray cluster; {GIVE}"),
    (f"10.0.0.1:{2**70}", f"RAY_ADDRESS=10.0.0.1:{2**70}: the port must be a number from 1 to 65535, not "
                          f"'{2**70}'; {GIVE}"),
    ("10.0.0.1:0", f"RAY_ADDRESS=10.0.0.1:0: the port must be a number from 1 to 65535, not '0'; {GIVE}"),
    ("10.0.0.1:-1", f"RAY_ADDRESS=10.0.0.1:-1: the port must be a number from 1 to 65535, not '-1'; {GIVE}"),
    ("10.0.0.1:６３７９",  # full-width digits: isdigit() says yes, int() reads them; no port is written so
     f"RAY_ADDRESS=10.0.0.1:６３７９: the port must be a number from 1 to 65535, not '６３７９'; {GIVE}"),
    ("10.0.0.1:", f"RAY_ADDRESS=10.0.0.1:: the port must be a number from 1 to 65535, not ''; {GIVE}"),
    (":6379", f"RAY_ADDRESS=:6379 is not an address of a Ray cluster; {GIVE}"),
    ("[::1:6379", f"RAY_ADDRESS=[::1:6379 is not an address of a Ray cluster; {GIVE}"),
    ("head node:6379", f"RAY_ADDRESS=head node:6379 is not an address of a Ray cluster; {GIVE}"),
    ("head/x:6379", f"RAY_ADDRESS=head/x:6379 is not an address of a Ray cluster; {GIVE}"),
    ("he$d:6379", f"RAY_ADDRESS=he$d:6379: 'he$d' is not a host name or an IP address; {GIVE}"),
    ("http://10.0.0.1:8265", f"RAY_ADDRESS=http://10.0.0.1:8265 is a http:// address, not one of a Ray cluster; "
                             f"{GIVE} (port 8265 is Ray's dashboard, a web page)"),
    ("gcs://10.0.0.1:6379", f"RAY_ADDRESS=gcs://10.0.0.1:6379 is a gcs:// address, not one of a Ray cluster; {GIVE}"),
])
def test_every_address_form_is_parsed_with_a_clear_error(address: str, message: str) -> None:
    with pytest.raises(ClusterError) as caught:
        parse_address(address)
    assert str(caught.value) == message


@pytest.mark.parametrize(("address", "parsed"), [("10.0.0.1:6379", ("10.0.0.1", 6379)),
                                                ("[::1]:6379", ("::1", 6379)), ("head-1.lan:1", ("head-1.lan", 1)),
                                                ("localhost:65535", ("localhost", 65535))])
def test_good_addresses_parse(address: str, parsed: tuple[str, int]) -> None:
    assert parse_address(address) == parsed


@pytest.mark.ray
def test_a_ray_client_address_without_ray_client_says_what_to_install() -> None:
    import ray
    from ray._private.utils import get_ray_client_dependency_error

    if get_ray_client_dependency_error() is None:
        pytest.skip("ray[client] is installed here")
    with pytest.raises(ClusterError) as caught:
        parse_address("ray://10.0.0.1:10001")
    assert str(caught.value) == (
        f"RAY_ADDRESS=ray://10.0.0.1:10001 connects through Ray Client, which needs the ray[client] extra: pip "
        f"install 'ray[client]=={ray.__version__}', or give the head node's HOST:PORT (without ray://) to join the "
        "cluster directly")


BOGUS = ["", "   ", "not a token", "abc\ndef", "tökén", "a" * 5000]


@pytest.mark.parametrize(("token", "where"), [(token, where) for token in BOGUS for where in ("variable", "file")]
                         + [("ab\x00cd", "file")])  # (an environment variable cannot hold a NUL)
def test_a_token_no_cluster_could_accept_is_said_before_connecting(token: str, where: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    if where == "variable":
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        source = "RAY_AUTH_TOKEN"
        if not token:  # an empty variable is no token: Ray looks further, as does the check
            monkeypatch.setenv("HOME", str(tmp_path))
            (tmp_path / ".ray").mkdir()
            (tmp_path / ".ray" / "auth_token").write_text("")
            source = str(tmp_path / ".ray" / "auth_token")
    else:
        (tmp_path / "token").write_bytes(token.encode("utf-8"))
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
        source = f"RAY_AUTH_TOKEN_PATH ({tmp_path / 'token'})"
    with pytest.raises(ClusterError) as caught:
        check_token()
    assert str(caught.value) == (
        f"the Ray token in {source} is not a token (empty, too long, or holding spaces or characters outside "
        "printable ASCII); copy it again from the head node (`ray get-auth-token` prints it)")


def test_a_good_token_or_no_token_mode_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0f" * 32 + "\n")  # a file's trailing newline is no part of it
    check_token()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not a token")
    check_token()


def test_ray_listen_takes_only_an_address_of_this_machine() -> None:
    assert listen_address("127.0.0.1") == "127.0.0.1"
    with pytest.raises(ClusterError) as caught:
        listen_address("my-laptop")
    assert str(caught.value) == (
        "--ray-listen 'my-laptop' is not an IP address; give this machine's address on the network the other nodes "
        "share (e.g. 192.168.1.20), or leave it out to keep the cluster on 127.0.0.1")
    with pytest.raises(ClusterError) as caught:
        listen_address("192.0.2.254")  # TEST-NET-1: no machine's own address
    assert str(caught.value) == (
        "--ray-listen 192.0.2.254 is not an address of this machine (cannot assign requested address); give one of "
        "its own addresses (`ip address` lists them)")


def cli(*arguments: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # the bound: a command that waits longer than this on a network fails the test instead of hanging it
    return subprocess.run([sys.executable, "-m", "storyforge", *arguments], capture_output=True, text=True, cwd=cwd,
                          timeout=90, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.ray
def test_render_at_a_silent_server_exits_1_with_one_message(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(STORY)
    with server("silent") as port:
        done = cli("render", "film.yaml", "--backend", "animatic", "--executor", "ray", cwd=story_dir,
                   env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: something listens at 127.0.0.1:{port} (RAY_ADDRESS) but sent nothing within 1.5s of a handshake, "
        f"{CHECK}")
    assert not (story_dir / "renders" / "film" / "film.mp4").exists()


def test_ray_listen_is_for_the_ray_executor_and_its_own_cluster(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(STORY)
    done = cli("render", "film.yaml", "--backend", "animatic", "--ray-listen", "127.0.0.1", cwd=story_dir, env={})
    assert done.returncode == 2
    assert "'--ray-listen': opens the cluster of --executor ray; add --executor ray, or leave it out" in done.stderr
    done = cli("render", "film.yaml", "--backend", "animatic", "--executor", "ray", "--ray-listen", "127.0.0.1",
               cwd=story_dir, env={"RAY_ADDRESS": "10.0.0.1:6379"})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: --ray-listen 127.0.0.1 opens the Ray cluster storyforge starts for itself, but "
        "RAY_ADDRESS=10.0.0.1:6379 names a cluster to join; unset RAY_ADDRESS, or drop --ray-listen (and "
        "STORYFORGE_RAY_LISTEN)")
