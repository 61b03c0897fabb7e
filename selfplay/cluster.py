"""Ray for a run: an embedded instance on this machine, or a cluster joined with --address.

Joining checks first, in seconds and with one line each, what ray.init would take minutes
or a wall of GCS warnings to report (DESIGN.md section 9):
- that something listens at HOST:PORT (a plain socket);
- which token-auth mode the cluster's GCS accepts: one gRPC call without a token, one with
  the token Ray finds here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). Ray
  turns token auth on by itself only for a cluster it finds on its own, never for an
  explicit address, so RAY_AUTH_MODE is set to what the cluster accepts.
The code of dpv and selfplay travels with the job to every node (runtime_env py_modules):
a node needs the dependencies (torch, open_spiel, ...) installed, not this repository.
A cluster with fewer CPUs than the config's actors ask for gets each actor a share of a CPU,
as the embedded instance oversubscribes the cores, and the run says so.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from dpv.errors import ConfigError, DPVError
from selfplay.config import RunConfig

AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTO_FILE = Path("/tmp/ray/ray_current_cluster")  # where `ray start --head` records its address


class HeadLost(DPVError):
    """The cluster's head is gone: its GCS no longer answers (the run saves and exits)."""


def head_reachable(gcs_address: str, timeout: float = 2.0) -> bool:
    """Whether the head's GCS port still accepts connections (a live process always does)."""
    host, _, port = gcs_address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


class HeadWatch:
    """Probes the head's GCS port from a thread. When it stops answering, the driver may be
    waiting inside a Ray call that never returns (Ray ends such a driver a minute later,
    without a word): the watch sets `lost` and sends this process SIGINT, whose handler
    raises HeadLost in the main thread, so the run saves and exits with one line."""

    # one TCP connect a second: Ray's own reaction to a lost head races this watch (the
    # driver's core worker ends the process, exit 1, when its local raylet goes with the head)
    def __init__(self, gcs_address: str, every: float = 1.0, misses: int = 2):
        self.gcs_address = gcs_address
        self.every = every
        self.misses = misses  # consecutive failed probes that mean the head is gone
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="head-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        missed = 0
        while not self._stop.wait(self.every):
            missed = 0 if head_reachable(self.gcs_address) else missed + 1
            if missed >= self.misses and not self._stop.is_set():
                self.lost = f"lost the Ray cluster's head (its GCS at {self.gcs_address} does not answer)"
                os.kill(os.getpid(), signal.SIGINT)
                return


@dataclass(frozen=True)
class RayInfo:
    where: str  # for the console: "embedded Ray, 3 CPUs" or "Ray cluster at H:P (...)"
    cpus: float
    cpu_fit: float = 1.0  # share of its threads each actor reserves (< 1: a smaller cluster)
    fit_note: str | None = None  # the line that says so


def needed_cpus(cfg: RunConfig) -> int:
    return cfg.selfplay.actors * cfg.selfplay.threads_per_actor + cfg.ray.eval_actors


def actor_cpus(threads: int, fit: float) -> float:
    """CPUs one actor reserves: its threads, scaled by `fit` (Ray takes whole numbers above
    one and hundredths below)."""
    x = threads * fit
    return float(math.floor(x)) if x >= 1 else max(0.01, math.floor(x * 100) / 100)


def code_for_nodes() -> dict:
    """runtime_env that ships this package's code to every node of the cluster."""
    import dpv
    import selfplay

    return {"py_modules": [dpv, selfplay], "excludes": ["__pycache__"]}


# ------------------------------------------------------------------ address checks
def resolve_auto() -> str:
    """--address auto: RAY_ADDRESS, else the cluster `ray start --head` last started here."""
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return env
    if AUTO_FILE.is_file() and AUTO_FILE.read_text().strip():
        return AUTO_FILE.read_text().strip()
    raise ConfigError("--address auto: no Ray cluster was started on this machine "
                      "(start one with `ray start --head`, or give HOST:PORT)")


def probe(address: str, timeout: float = 3.0) -> tuple[str, int]:
    """Fail in seconds, with one line, when nothing listens at the cluster's GCS port
    (ray.init itself was seen to take minutes to give up)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address {address!r} must be auto or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster there ({e.strerror or e})") from None
    return host, int(port)


def _local_token_header() -> dict:
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    return loader.get_token_for_http_header(ignore_auth_mode=True)


def cluster_auth_mode(address: str, timeout: float = 5.0) -> str:
    """'disabled' or 'token': the mode the cluster's GCS accepts, asked with one cheap call
    (GetClusterId) without and then with the local token. ConfigError when it wants a token
    this machine does not have, or when what listens there is not a Ray GCS."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)

        def ask(metadata) -> grpc.StatusCode:
            try:
                stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout,
                                  metadata=metadata)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

        code = ask(None)
        if code == grpc.StatusCode.OK:
            return "disabled"
        if code != grpc.StatusCode.UNAUTHENTICATED:
            raise ConfigError(f"--address {address}: what listens there is not a Ray cluster's GCS "
                              f"(it answered {code.name})")
        header = _local_token_header()
        if header and ask(list(header.items())) == grpc.StatusCode.OK:
            return "token"
    where = ("the token Ray finds here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) "
             "is not its token" if header else "this machine has no token")
    raise ConfigError(f"--address {address}: the cluster uses token authentication and {where}; "
                      f"copy ~/.ray/auth_token from the head node, or set RAY_AUTH_TOKEN")


def _match_auth_mode(address: str) -> str:
    """Set RAY_AUTH_MODE to what the cluster accepts; a user's explicit other setting is an
    error said at once, not twenty seconds of GCS warnings."""
    mode = cluster_auth_mode(address)
    mine = os.environ.get(AUTH_MODE_ENV)
    if mine is not None and mine.lower() != mode:
        raise ConfigError(f"--address {address}: the cluster's token authentication is {mode}, "
                          f"but {AUTH_MODE_ENV}={mine}; unset {AUTH_MODE_ENV} or set it to {mode}")
    os.environ[AUTH_MODE_ENV] = mode
    from ray._raylet import Config

    Config.initialize("")  # Ray caches its config: make this process see the mode (as Ray does)
    return mode


# ------------------------------------------------------------------ connecting
def connect(address: str | None, cfg: RunConfig) -> RayInfo:
    import ray

    # Ray warns on every embedded start that token auth is on; that is its default, not news.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    needed = needed_cpus(cfg)
    if address is None:
        cpus = max(cfg.ray.num_cpus or os.cpu_count() or 1, needed)
        # address="local": never join some other cluster that happens to run on this machine
        try:
            ray.init(address="local", num_cpus=cpus,
                     object_store_memory=cfg.ray.object_store_memory or None,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=True)
        except (ValueError, RuntimeError, ConnectionError) as e:  # e.g. an object store /dev/shm cannot hold
            raise ConfigError(f"could not start Ray on this machine: {str(e).splitlines()[0]}") from None
        return RayInfo(f"embedded Ray on this machine, {cpus} CPUs", float(cpus))
    given = address
    if address == "auto":
        address = resolve_auto()
    host, port = probe(address)
    address = f"{host}:{port}"
    mode = _match_auth_mode(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env=code_for_nodes())
    except (ConnectionError, RuntimeError) as e:
        raise ConfigError(f"--address {given}: could not join the Ray cluster at {address} "
                          f"({str(e).splitlines()[0][:200]})") from None
    cpus = ray.cluster_resources().get("CPU", 0.0)
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    where = (f"Ray cluster at {address} ({'token auth' if mode == 'token' else 'no token auth'}, "
             f"{nodes} node{'s' if nodes != 1 else ''}, {cpus:g} CPUs)")
    if cpus <= 0:
        ray.shutdown()
        raise ConfigError(f"--address {given}: the Ray cluster at {address} has no CPUs for actors")
    if cpus >= needed:
        return RayInfo(where, cpus)
    fit = cpus / needed
    share = actor_cpus(cfg.selfplay.threads_per_actor, fit)
    note = (f"the cluster has {cpus:g} CPUs and this config's actors want {needed} "
            f"(selfplay.actors x threads_per_actor + ray.eval_actors): each self-play actor "
            f"reserves {share:g} CPU and each evaluation actor {actor_cpus(1, fit):g}, sharing the cores")
    return RayInfo(where, cpus, fit, note)
