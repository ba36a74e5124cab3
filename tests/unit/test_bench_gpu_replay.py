"""bench/gpu_replay.py: the day's script, and the GPU-seconds read from Slurm's accounting."""

import itertools
import random
import subprocess

from bench import gpu_replay
from bench.gpu_replay import DAY, day_script, gpu_seconds_held
from tests.support import nodes


def test_a_day_is_runs_with_gaps_within_the_working_day():
    runs = day_script(random.Random(1))
    assert runs == day_script(random.Random(1))  # the same day in every run of the bench
    assert 0 <= runs[0][0] <= 30 * 60
    assert all(when < DAY and 10 <= run <= 300 for when, run in runs)
    gaps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(runs)]
    assert min(gaps) >= 2 * 60
    assert max(gaps) >= 30 * 60  # away at least once: an idle kernel job ends then


def test_only_kernel_jobs_count_each_by_its_gpus(monkeypatch):
    out = "\n".join(
        [
            "factorylab-kernel-12|2026-11-30T10:01:00|40|billing=1,cpu=1,gres/gpu=1,mem=1G,node=1",
            "factorylab-kernel-12|2026-11-30T10:02:00|7|cpu=2,gres/gpu:h100=2,gres/gpu=2,node=1",
            "factorylab|2026-11-30T10:00:00|300|billing=1,cpu=1,mem=2G,node=1",  # a Lab: no GPU
            "factorylab-kernel-13|Unknown||cpu=1,gres/gpu=1",  # never ran
            "factorylab-kernel-9|2026-11-30T09:59:00|500|cpu=1,gres/gpu=1",  # before the replay
        ]
    )
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, out + "\n", "")

    monkeypatch.setattr(gpu_replay.subprocess, "run", fake_run)
    assert gpu_seconds_held(["demo01", "demo02"], "2026-11-30T10:00:00") == (54.0, 2)
    assert calls[0][:3] == ["sacct", "-X", "-n"]
    assert "demo01,demo02" in calls[0]


def test_the_cluster_gpus_are_summed_from_sinfo(monkeypatch):
    out = "c01 gpu:h100:4\nc02 gpu:a100:2(S:0)\n"
    monkeypatch.setattr(
        nodes.subprocess,
        "run",
        lambda argv, **kwargs: subprocess.CompletedProcess(argv, 0, out, ""),
    )
    assert nodes.gpu_nodes() == {"c01": "gpu:h100:4", "c02": "gpu:a100:2"}
    assert gpu_replay.cluster_gpus() == 6


def test_whole_sessions_hold_all_day_or_until_the_idle_limit():
    script = [(600.0, 60.0), (900.0, 60.0), (10_000.0, 100.0)]
    assert gpu_replay.whole_sessions_held(script, None) == DAY - 600
    # stopped 30 min after the run ending at 960, started again at 10 000
    assert gpu_replay.whole_sessions_held(script, 1800) == (960 + 1800 - 600) + (
        10_100 + 1800 - 10_000
    )
    assert gpu_replay.whole_sessions_held([], 1800) == 0.0
