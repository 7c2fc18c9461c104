import os

# Tests must never reach the network (torchvision/mmengine download code paths stay untested here).
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-unused"))
os.environ.setdefault("MPLBACKEND", "Agg")
