"""The Ray executor: runs as Ray tasks on one machine's GPUs or a cluster."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from dataclasses import replace

import torch

from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.base import ImageData
from robustbench_mix.execution.executors import EXECUTORS, Job, Outcome, Recorder, Runs, train_run
from robustbench_mix.experiment.experiment import Experiment, plugin_record
from robustbench_mix.experiment.grids import surrogate_of
from robustbench_mix.plugins import load_plugins, loaded_specs

RAY_EXTRA = "pip install 'robustbench_mix[ray]' (or pip install ray)"
_ADDRESS = re.compile(r"(ray://)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})")


# the HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (a Ray head's GCS, Ray Client's server)
# answers with a SETTINGS frame of its own (frame type 4, the fourth byte of its 9-byte header)
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def probe_ray_head(address: str, host: str, port: int, timeout: float = 5.0) -> None:
    """Refuse, within ``timeout`` seconds, an address where nothing listens or where something that is not a gRPC
    server (as Ray's head is) listens: ray.init would retry it for many minutes."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_H2_HELLO)
            head = b""
            while len(head) < 9:
                chunk = s.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        head = b""
    except OSError as e:
        raise UsageError(f"--address {address}: cannot reach a Ray head there ({e.strerror or e}); start one with "
                         "`ray start --head` or leave --address empty") from None
    if len(head) < 9 or head[3] != 4:
        raise UsageError(f"--address {address}: something listens there, but it does not answer as a Ray head does "
                         "(a gRPC server); give the address `ray start --head` printed (port 6379 by default, "
                         "ray://HOST:10001 for Ray Client), or leave --address empty to start Ray here")


def _ray_train(exp: Experiment, datasets: dict[str, ImageData], job: Job, wait: bool, *after) -> Outcome:
    """The Ray task: ``after`` holds the outcomes of the runs this one needs (its surrogate), so Ray starts it
    only when they are done."""
    import ray

    if job.threads:
        torch.set_num_threads(job.threads)
    refused = worker_plugins(exp, job)
    if refused:
        return Outcome(exp, "failed", reason=refused)
    if exp.device == "auto" and not ray.get_gpu_ids():  # no GPU share: CPU, even where the node has GPUs
        exp = replace(exp, device="cpu")  # the device is not part of the run id
    o = train_run(exp, datasets, job, wait)
    o.resources = dict(ray.get_runtime_context().get_assigned_resources())
    return o


def worker_plugins(exp: Experiment, job: Job) -> str:
    """Load the driver's plugins in this worker (the same paths, on a shared file system or shipped with the job);
    '' when the run's plugin entries here are the driver's, else why the worker refuses the run."""
    try:
        load_plugins(job.plugins, only=True)
    except UsageError as e:
        return f"on worker {socket.gethostname()}: {e}"
    here = plugin_record(exp, keep_unknown=False)
    if here != exp.plugins:
        return (f"on worker {socket.gethostname()}: the plugin entries differ from the driver's (driver: "
                f"{exp.plugins or 'none'}; worker: {here or 'none'}): give the workers the same plugin files")
    return ""


@EXECUTORS.register("ray")
class RayExecutor:
    """Each run a Ray task with ``--gpus-per-run`` of a GPU (a fraction packs several runs on one GPU) and
    ``--cpus-per-run`` CPUs; a target waits for its surrogate's task. A task whose worker dies (a node lost,
    ``os._exit``, the OOM killer) is retried up to ``--max-retries`` times and resumes from its checkpoint in
    the shared ``--out``. The data are put in Ray's object store once, so workers read no files but ``--out``."""

    def __init__(self, args):
        self.address = args.address or ""
        self.gpus = args.gpus_per_run
        self.cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
        self.retries = 2 if args.max_retries is None else args.max_retries
        if self.gpus is not None and not 0 <= self.gpus <= 64:
            raise UsageError(f"--gpus-per-run {self.gpus:g} must be between 0 and 64 (0.25 packs four runs per GPU)")
        if not 0 < self.cpus <= 1024:
            raise UsageError(f"--cpus-per-run {self.cpus:g} must be above 0 (e.g. 1 or 4)")
        for flag, v in (("--gpus-per-run", self.gpus), ("--cpus-per-run", self.cpus)):
            if v is not None and v > 1 and v != int(v):  # Ray's rule: a share above one is whole units
                raise UsageError(f"{flag} {v:g}: Ray takes a fraction up to 1 (a share of one unit) or a whole "
                                 f"number; use {int(v)} or {int(v) + 1}")
        if self.retries < 0:
            raise UsageError(f"--max-retries {self.retries} must be 0 or more")
        if self.address not in ("", "auto") and not _ADDRESS.fullmatch(self.address):
            raise UsageError(f"--address {self.address!r} is not 'auto', HOST:PORT or ray://HOST:PORT (empty: start "
                             "a Ray instance on this machine)")
        self.started_here = False

    def connect(self, runs: list[Experiment]) -> None:
        """Join or start Ray before any data are loaded or runs trained, so a bad address or a request no node
        can meet fails at once (Ray itself would wait for it forever)."""
        try:
            import ray
        except ImportError:
            raise UsageError(f"--executor ray needs the ray package, which is not installed: {RAY_EXTRA}") from None
        bad = sorted({r.device for r in runs if r.device.startswith("cuda:")})
        if bad:
            raise UsageError(f"--device {bad[0]} cannot be used with --executor ray, which assigns each run its GPU "
                             "share itself; use --device auto or cuda")
        if not ray.is_initialized():  # a program that started Ray itself (as the tests do) keeps its connection
            self._init(ray)
        self.check_feasible(runs, [n["Resources"] for n in ray.nodes() if n.get("Alive")])

    def _init(self, ray) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a benchmark run reports nothing to anyone
        m = _ADDRESS.fullmatch(self.address)
        if m:  # fail in seconds, naming the address, rather than after Ray's long reconnect loop
            probe_ray_head(self.address, m["host"].strip("[]"), int(m["port"]))
            # Ray retries a GCS that does not answer this many times, each try waiting about 40 s for its RPC
            # timeouts: a silent server fails the join after about 2 minutes (measured), not many minutes
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "3")
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=self.address or None, include_dashboard=False, log_to_driver=True,
                     runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}})
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--address {self.address or '(empty)'}: could not {'join' if self.address else 'start'}"
                             f" Ray ({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        finally:  # ray.init replaces SIGTERM's handler by an exit without the suite's resume message: put it back
            if threading.current_thread() is threading.main_thread() and sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        self.started_here = True

    def gpus_for(self, runs: list[Experiment], cluster_gpus: float) -> float:
        """--gpus-per-run, or by default one GPU per run where the cluster has GPUs and the runs may use them."""
        if self.gpus is not None:
            return self.gpus
        return 1.0 if any(r.device != "cpu" for r in runs) and cluster_gpus > 0 else 0.0

    def check_feasible(self, runs: list[Experiment], nodes: list[dict]) -> None:
        """Refuse a run no node can hold (a task of one run is placed on one node): Ray would queue it forever."""
        gpus = self.gpus_for(runs, sum(n.get("GPU", 0) for n in nodes))
        have = "; ".join(sorted({f"{n.get('CPU', 0):g} CPU(s), {n.get('GPU', 0):g} GPU(s)" for n in nodes})) or "none"
        if not any(n.get("CPU", 0) >= self.cpus and n.get("GPU", 0) >= gpus for n in nodes):
            most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
            hint = (f"use --gpus-per-run 0 (no node has {gpus:g} GPU(s))"
                    if not any(n.get("GPU", 0) >= gpus for n in nodes)
                    else f"use --cpus-per-run {most_cpus:g} or less")
            raise UsageError(f"--gpus-per-run {gpus:g} --cpus-per-run {self.cpus:g}: no node of the Ray cluster "
                             f"has that much (its nodes have: {have}), so every run would wait forever; {hint}")
        cuda = sorted({r.device for r in runs if r.device.startswith("cuda")})
        if cuda and gpus == 0:
            raise UsageError(f"--device {cuda[0]} with --executor ray, but the runs get no GPU share (--gpus-per-run "
                             f"0, or no GPU in the cluster: {have}); give --gpus-per-run or use --device auto")

    def run(self, runs: Runs, datasets: dict[str, ImageData], job: Job, recorder: Recorder) -> None:
        import ray

        gpus = self.gpus_for([exp for exp, _ in runs], ray.cluster_resources().get("GPU", 0))
        job = replace(job, options=replace(job.options, progress=False),  # one bar: the driver's
                      threads=max(1, int(self.cpus)), plugins=loaded_specs())
        task = ray.remote(_ray_train).options(num_cpus=self.cpus, num_gpus=gpus, max_retries=self.retries,
                                              retry_exceptions=False)
        data = ray.put(datasets)
        refs: dict[str, ray.ObjectRef] = {}
        pending: dict[ray.ObjectRef, tuple[Experiment, str, bool]] = {}

        def submit(exp: Experiment, tag: str, wait: bool) -> None:
            surrogate = surrogate_of(exp).run_id if exp.surrogate_seed is not None else None
            after = [refs[surrogate]] if surrogate in refs else []  # none when it was finished before
            refs[exp.run_id] = ref = task.remote(exp, data, job, wait, *after)
            pending[ref] = (exp, tag, wait)

        for exp, tag in runs:
            submit(exp, tag, False)
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                exp, tag, waited = pending.pop(ref)
                try:
                    o = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died more often than --max-retries, or a bug
                    first = (str(e).strip().splitlines() or [""])[-1][:500]
                    o = Outcome(exp, "failed", reason=f"{e.__class__.__name__}: {first}")
                if o.status == "busy" and not waited:  # held by another process: wait for it in a new task
                    recorder.say(f"{tag}: being trained by {o.reason} (another process on this --out); a task "
                                 "waits for it")
                    submit(exp, tag, True)
                else:
                    recorder.record(o, f"{tag} [{o.where}]" if o.where else tag)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            recorder.say(f"cancelled {len(pending)} Ray task(s)")
            raise

    def close(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()
