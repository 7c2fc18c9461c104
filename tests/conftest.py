import os

from unmix.core.threads import apply as apply_thread_policy

# The CLI's thread policy for the tests too (and, through the environment, for every subprocess they
# start), before any test module imports torch: a spinning OpenMP pool beside CI's other processes
# slows a run up to 20x.
apply_thread_policy()

# Tests must never reach the network (torchvision/mmengine download code paths stay untested here).
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-unused"))
os.environ.setdefault("MPLBACKEND", "Agg")
