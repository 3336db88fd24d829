"""embodia.serve.process: the server process's allocator, model threads, switch interval and idle memory trimming."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import pytest

from embodia.serve.process import SWITCH_INTERVAL_S, IdleTrimmer, model_threads, tune_interpreter

ALLOCATION_BURST = """
import ctypes, resource, sys, threading
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
if sys.argv[1] == "tuned":
    from embodia.serve.process import tune_allocator
    assert tune_allocator()
elif sys.argv[1] == "mapped":  # every block of 1 MiB or more mapped and unmapped (the tuning before)
    assert ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)
keep = []
def work(seed):
    for i in range(30):
        message = bytearray(4 << 20)  # a 4 MB request, freed after it was answered
        keep.append(bytes(64 * (i + seed)))  # something small that outlives it
        del message
work(99)  # the first requests find the heap empty
base, faults = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
ctypes.CDLL("libc.so.6").malloc_trim(0)  # what IdleTrimmer does once the server is idle
print(faults / 120, rss() - base)
"""


def _burst(mode: str) -> tuple[float, float]:
    run = subprocess.run(
        [sys.executable, "-c", ALLOCATION_BURST, mode], capture_output=True, text=True, check=True
    )
    faults, resident = run.stdout.split()
    return float(faults), float(resident)


def test_large_messages_reuse_memory_and_an_idle_trim_hands_it_back():
    """4 MB messages by 4 threads, 120 in all: with the server's tuning the heap serves message after
    message (mapping each afresh costs a page fault per 4 KiB page: 1,025 per message, taken holding the
    interpreter lock), and what stays resident after the burst and the idle trim is a few MB (one
    message per arena), not the burst."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt and /proc are Linux's")
    faults, resident = _burst("tuned")
    assert faults < 200, faults  # page faults per message
    assert resident < 4 * 2 + 2, resident  # MB: at most a message in each of the 2 arenas
    mapped_faults, _ = _burst("mapped")
    assert mapped_faults > 1000, mapped_faults  # the measure sees the cost it guards against


def test_model_threads_leave_a_core_to_the_server():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert model_threads() == max(1, cores - 1)


def test_serve_refuses_a_bad_thread_count_before_loading_anything():
    from embodia.serve.server import serve

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            serve("no/such/checkpoint", port=0, threads=bad)


def test_a_failed_start_leaves_the_callers_threads_alone(monkeypatch, tmp_path):
    """`serve` sets torch's threads for the whole process, but only once the policy has loaded: a start
    that fails (here: no shipped base) leaves a calling process, such as a test run, as it was."""
    import torch

    from embodia.policy.checkpoint import SHIPPED_POLICIES
    from embodia.serve.server import serve

    monkeypatch.setitem(SHIPPED_POLICIES, "base", tmp_path / "missing")
    before, interval = torch.get_num_threads(), sys.getswitchinterval()
    with pytest.raises(Exception, match="missing"):
        serve(port=0, threads=before + 1)
    assert torch.get_num_threads() == before
    assert sys.getswitchinterval() == interval


def test_the_interpreter_hands_its_lock_over_quickly_in_the_server():
    before = sys.getswitchinterval()
    try:
        assert tune_interpreter() == before
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(before)


def test_serve_sets_threads_and_the_switch_interval_before_it_listens(monkeypatch):
    """The settings are in force when uvicorn starts answering (uvicorn's loop is replaced by a probe;
    the test process's own settings are restored afterwards)."""
    import torch
    import uvicorn

    from embodia.serve.server import serve

    seen = {}

    def probe(self, *args, **kwargs):
        seen.update(threads=torch.get_num_threads(), interval=sys.getswitchinterval())
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", probe)
    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    try:
        serve(port=0, threads=1)
    finally:
        torch.set_num_threads(threads)
        sys.setswitchinterval(interval)
    assert seen == {"threads": 1, "interval": pytest.approx(SWITCH_INTERVAL_S)}


def test_memory_is_handed_back_once_the_server_is_idle():
    calls = []
    trimmer = IdleTrimmer(0.2)
    trimmer._trim = calls.append  # glibc's malloc_trim(0), recorded
    trimmer.touch()
    time.sleep(0.05)
    assert calls == []  # not while requests come in
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert calls == [0]  # once per idle period, not repeatedly
