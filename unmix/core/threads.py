"""The thread policy: how many threads torch's pools get, and how idle OpenMP threads wait.

torch's CPU kernels run on the OpenMP runtime it links (GNU libgomp for the PyPI wheels; Intel's
libiomp5 in some conda builds). By default libgomp threads *spin* while they wait at a barrier. On a
machine where another process holds a core, a spinning thread burns the quantum its partner needs
to reach the barrier, and throughput collapses (20x measured on our 2-core machine), far below the
fair share. A passive wait (threads sleep at the barrier) costs a few percent idle and keeps the
fair share under competition, so it is the default here. Both runtimes read their variables once,
when torch is imported, hence `apply` before any torch import.

The user's own settings always win: a variable already in the environment is never changed, and
`--threads N` (or OMP_NUM_THREADS) overrides the core count.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Mapping

# The variables each runtime honours for its wait policy (libgomp: OMP_WAIT_POLICY, GOMP_SPINCOUNT;
# libiomp5: OMP_WAIT_POLICY, KMP_BLOCKTIME). Any of them set by the user means: leave waiting alone.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
# Every pool that sizes itself from these (OpenMP, MKL, OpenBLAS via numpy).
COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: taskset, cgroups' cpusets, slurm)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ThreadPolicy:
    threads: int
    wait_policy: str  # "PASSIVE", or what the user set ("user: OMP_WAIT_POLICY=ACTIVE")
    reasons: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.threads} thread(s), wait {self.wait_policy}: " + "; ".join(self.reasons)


def _user_count(environ: Mapping[str, str]) -> int | None:
    value = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def decide(threads: int | None = None, environ: Mapping[str, str] | None = None) -> ThreadPolicy:
    """The policy for this process: `threads` if given, else the user's OMP_NUM_THREADS, else the cores."""
    environ = os.environ if environ is None else environ
    cores = available_cores()
    if threads is not None:
        n, why = threads, f"--threads {threads} ({cores} core(s) available)"
    elif _user_count(environ) is not None:
        n = _user_count(environ)
        why = f"OMP_NUM_THREADS={n} in the environment (yours, or torchrun's 1 per process)"
    else:
        n, why = cores, f"{cores} core(s) in this process's affinity mask (os.sched_getaffinity)"
    user_wait = [f"{k}={environ[k]}" for k in WAIT_VARIABLES if k in environ]
    if user_wait:
        wait, wait_why = "user: " + ", ".join(user_wait), "wait policy left as the user set it"
    else:
        wait, wait_why = "PASSIVE", "idle OpenMP threads sleep instead of spinning (no collapse beside other processes)"
    return ThreadPolicy(n, wait, [why, wait_why])


def thread_environment(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that should run `threads` threads under this policy."""
    env = dict(os.environ if environ is None else environ)
    for key in COUNT_VARIABLES:
        env[key] = str(threads)
    if not any(k in env for k in WAIT_VARIABLES):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def apply(threads: int | None = None) -> ThreadPolicy:
    """Set this process's policy. Before torch is imported it holds fully; after, only the count."""
    policy = decide(threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(policy.threads)
        policy.reasons.append("torch was already imported: the wait policy is whatever it started with")
        return policy
    os.environ.update(thread_environment(policy.threads))
    return policy


def openmp_runtime() -> str:
    """The OpenMP library this process has loaded (after torch's import), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.rsplit("/", 1)[-1].strip() for line in f if "omp" in line.rsplit("/", 1)[-1]}
    except OSError:
        return "unknown (no /proc/self/maps)"
    return ", ".join(sorted(libs)) or "none loaded"
