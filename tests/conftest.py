import os

import pytest

from unmix.core.threads import apply as apply_thread_policy

# The CLI's thread policy for the tests too (and, through the environment, for every subprocess they
# start), before any test module imports torch: a spinning OpenMP pool beside CI's other processes
# slows a run up to 20x.
apply_thread_policy()

# Tests must never reach the network (torchvision/mmengine download code paths stay untested here).
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-unused"))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of small-tensor tests: on the shared machine's cores it is
    several times faster than two."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_sessionfinish(session, exitstatus):
    """A child a timed-out test left behind (a torch.multiprocessing worker is not a daemon) would
    keep the interpreter from exiting, and CI would wait its 90 minutes after the last test: kill
    what is left before Python's exit handlers join it."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)
