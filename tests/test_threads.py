"""The thread policy: the user's settings win, passive waiting otherwise, applied before torch starts."""
import os
import subprocess
import sys

from unmix.core.threads import COUNT_VARIABLES, WAIT_VARIABLES, available_cores, decide, thread_environment


def test_defaults_are_the_cores_and_a_passive_wait():
    policy = decide(environ={})
    assert policy.threads == available_cores() >= 1
    assert policy.wait_policy == "PASSIVE"


def test_the_users_settings_win():
    env = {"OMP_NUM_THREADS": "3", "GOMP_SPINCOUNT": "10000"}
    policy = decide(environ=env)
    assert policy.threads == 3 and "in the environment" in policy.reasons[0]
    assert policy.wait_policy == "user: GOMP_SPINCOUNT=10000"
    assert decide(5, environ=env).threads == 5  # --threads beats the environment
    child = thread_environment(2, env)
    assert child["OMP_NUM_THREADS"] == child["MKL_NUM_THREADS"] == "2"
    assert "OMP_WAIT_POLICY" not in child  # the user chose spinning; we do not override it


def test_a_child_environment_waits_passively():
    child = thread_environment(1, {"PATH": "/bin"})
    assert child == {"PATH": "/bin", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_cli_sets_threads_before_torch_and_doctor_says_so():
    # A user's shell: none of the variables set (conftest set them for this process).
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES + COUNT_VARIABLES}
    out = subprocess.run([sys.executable, "-m", "unmix.cli", "doctor", "--skip-train", "--threads", "1"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert "threads      1 thread(s), wait PASSIVE: --threads 1" in out.stdout, out.stdout + out.stderr
    assert "(torch 1 threads)" in out.stdout


def test_threads_must_be_a_positive_integer():
    out = subprocess.run([sys.executable, "-m", "unmix.cli", "knn", "--threads", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "expected a positive integer, got '0'" in out.stderr
