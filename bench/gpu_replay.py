"""GPU-seconds held over a compressed working day of 20 users: kernel jobs vs whole GPU
sessions doing the same work.

Each of 20 demo users (demo02 … demo20 and demo40, group ``factorylab-replay``) follows a script of
the day, the same for every run (seeded): they arrive in the first half hour, then work
in blocks of 15 to 60 minutes, each a series of GPU runs (a cell of 10 s to 5 min) with
edit gaps of 2 to 15 minutes between them, and blocks are separated by 30 to 120
minutes away (a meeting, lunch, reading). The day is compressed ``COMPRESSION`` times
(8 h in 4 min of real time), and replayed for real:

* every user has a Lab (profile ``lab``: 1 CPU, no GPU);
* a run executes ``time.sleep`` of its compressed length in a GPU kernel of the site's
  ``idle-test`` kernel (1 GPU, shut down after 10 idle seconds, i.e. 20 minutes of the
  compressed day); when the kernel was shut down, the run opens a new one, and waits
  for it (and for a free GPU: the demo has fewer GPUs than users);
* the GPU-seconds held are Slurm's own accounting (``sacct``: each kernel job's elapsed
  time times its GPUs).

Whole GPU sessions doing the same work hold one GPU each from the user's arrival to the
end of the day, or, stopped by the site's idle limit for GPU sessions (30 minutes), from
each return to 30 minutes after the last run: both are computed from the same scripts
(20 of them could not even run at once on the demo's GPUs). The GPU-seconds actually busy (the runs
themselves) are the lower bound.

Writes ``bench/results/gpu_replay.json``, with the cluster's GPUs (fewer than users:
at busy times kernel jobs queue, and delayed runs follow each other more closely) and
how late the day's last run ended. Run as root after ``make up`` (``make bench``).
Start, idle limit and queue waits are real seconds, not compressed: they weigh 120 times
more against the kernel jobs here than in a real day.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import subprocess
import sys
import threading
import time

from bench.common import RESULTS, write_result
from tests.support.hub import ADMIN_TOKEN_FILE, Hub, open_kernel, proxied, run_in_kernel
from tests.support.nodes import gpu_nodes

#: Not demo01 (the README's example user), nor the course's or the testers' (21-25, 36-39).
USERS = [f"demo{i:02d}" for i in [*range(2, 21), 40]]
KERNEL = "slurm-idle-test"
COMPRESSION = 120
DAY = 8 * 3600  # seconds of the working day
SEED = 17


#: The demo site's idle limit for GPU sessions (``idle.by_partition.gpu``), in the day.
GPU_SESSION_IDLE = 30 * 60


def whole_sessions_held(script: list[tuple[float, float]], idle: float | None) -> float:
    """Day-seconds a whole GPU session holds its GPU for this script: from the first run
    to the end of the day, or (``idle``) stopped that long after a run, and started
    again at the next run."""
    if not script:
        return 0.0
    held, start, last_end = 0.0, script[0][0], script[0][0] + script[0][1]
    for when, run in script[1:]:
        if idle is not None and when - last_end > idle:
            held += last_end + idle - start
            start = when
        last_end = max(last_end, when + run)
    end = DAY if idle is None else min(DAY, last_end + idle)
    return held + max(end, last_end) - start


def day_script(rng: random.Random) -> list[tuple[float, float]]:
    """One user's day: ``(when, run seconds)`` of each GPU run, in the day's seconds."""
    runs, now = [], rng.uniform(0, 30 * 60)
    while now < DAY:
        block_end = now + rng.uniform(15, 60) * 60
        while now < min(block_end, DAY):
            run = rng.uniform(10, 300)
            runs.append((now, run))
            now += run + rng.uniform(2, 15) * 60
        now += rng.uniform(30, 120) * 60
    return runs


class Replay:
    """One user's day, replayed against their Lab."""

    def __init__(self, hub: Hub, user: str, script: list[tuple[float, float]]):
        self.hub, self.user, self.script = hub, user, script
        self.token = hub.user_token(user)
        self.kernel: str | None = None
        self.opens: list[float] = []  # seconds a run waited for a new kernel
        self.late: list[float] = []  # seconds each run ended after its unhindered end
        self.done = 0.0  # when its last run ended

    def alive(self) -> bool:
        if self.kernel is None:
            return False
        answer = proxied(self.hub, self.user, f"api/kernels/{self.kernel}", self.token)
        return answer.status_code == 200 and answer.json().get("execution_state") != "dead"

    def run(self, seconds: float) -> None:
        for attempt in range(2):  # the culler may take the kernel between look and run
            if not self.alive():
                began = time.monotonic()
                self.kernel = open_kernel(self.hub, self.user, self.token, KERNEL, 3600)
                self.opens.append(time.monotonic() - began)
            try:
                code = f"import time; time.sleep({seconds:.3f})"
                run_in_kernel(self.hub, self.user, self.token, code, 300, self.kernel)
                return
            except Exception:
                if attempt:
                    raise
                self.kernel = None

    def day(self, t0: float) -> None:
        for when, seconds in self.script:
            at = t0 + when / COMPRESSION
            time.sleep(max(0.0, at - time.monotonic()))
            real = seconds / COMPRESSION
            self.run(real)
            self.late.append(time.monotonic() - at - real)
            self.done = time.monotonic()
        time.sleep(max(0.0, t0 + DAY / COMPRESSION - time.monotonic()))
        if self.kernel is not None:  # the end of the day: the user closes the notebook
            proxied(self.hub, self.user, f"api/kernels/{self.kernel}", self.token, method="DELETE")


FIELDS = "JobName,Start,ElapsedRaw,AllocTRES"


def gpu_seconds_held(users: list[str], since: str) -> tuple[float, int]:
    """Slurm's accounting of the users' kernel jobs that started at ``since`` or later:
    (GPU-seconds, jobs)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-u", ",".join(users), "-o", FIELDS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total, jobs = 0.0, 0
    for line in out.splitlines():
        name, start, elapsed, tres = line.split("|")
        if not name.startswith("factorylab-kernel-") or not start[:1].isdigit() or start < since:
            continue  # another job, one that never started, or one from before the replay
        gpus = sum(
            int(item.split("=")[1]) for item in tres.split(",") if item.startswith("gres/gpu=")
        )
        total, jobs = total + int(elapsed or 0) * gpus, jobs + 1
    return total, jobs


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    admin = ADMIN_TOKEN_FILE.read_text().strip()
    hub = Hub(admin)
    rng = random.Random(SEED)
    scripts = {user: day_script(rng) for user in USERS}

    def start_lab(user: str) -> None:
        own = Hub(admin)  # a client of its own per thread
        own.stop(user)
        own.start(user, {"profile": "lab"})

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # the Labs, four at a time
            list(pool.map(start_lab, USERS))
        since = time.strftime("%Y-%m-%dT%H:%M:%S")
        replays = [Replay(hub, user, scripts[user]) for user in USERS]
        t0 = time.monotonic() + 2
        errors: list[str] = []

        def day(replay: Replay) -> None:
            try:
                replay.day(t0)
            except Exception as exc:
                errors.append(f"{replay.user}: {exc}")

        threads = [threading.Thread(target=day, args=(r,)) for r in replays]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(15)  # the last kernel jobs end, and Slurm's accounting has them
        held, jobs = gpu_seconds_held(USERS, since)
    finally:
        for user in USERS:  # no Lab (8 hours each) outlives the bench
            hub.stop(user)
    whole = {
        f"{'all_day' if idle is None else 'stopped_after_idle_s_' + str(idle)}": round(
            sum(whole_sessions_held(script, idle) for script in scripts.values()) / COMPRESSION, 1
        )
        for idle in (None, GPU_SESSION_IDLE)
    }
    busy = sum(run for script in scripts.values() for _, run in script) / COMPRESSION
    opens = sorted(s for r in replays for s in r.opens)
    late = sorted(s for r in replays for s in r.late)
    report = {
        "benchmark": "gpu_replay",
        "what": "GPU-seconds held over a working day of 20 users, compressed "
        f"{COMPRESSION}x (real seconds)",
        "users": len(USERS),
        "runs": sum(len(s) for s in scripts.values()),
        "kernel_jobs": {"gpu_seconds": round(held, 1), "jobs": jobs},
        # computed from the same scripts: held all day, or stopped by the site's idle
        # limit for GPU sessions (30 minutes) and started again at the next run
        "whole_gpu_sessions_gpu_seconds": whole,
        "busy_gpu_seconds": round(busy, 1),
        # a replay with errors did less than its script: no ratio
        "ratio_kernel_jobs_vs_whole_sessions": {
            name: round(held / value, 3) if not errors and value else None
            for name, value in whole.items()
        },
        "cluster_gpus": cluster_gpus(),  # fewer than users: kernel jobs queue at busy times
        "day_overrun_s": round(max(r.done for r in replays) - (t0 + DAY / COMPRESSION), 1),
        "kernel_opens_s": {
            "count": len(opens),
            "median": _pick(opens, 0.5),
            "p95": _pick(opens, 0.95),
        },
        "run_delay_s": {"median": _pick(late, 0.5), "p95": _pick(late, 0.95)},
        "errors": errors,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("gpu_replay", report)
    print(
        f"GPU-seconds held: kernel jobs {held:.0f} ({jobs} jobs), whole GPU sessions {whole}, "
        f"busy {busy:.0f}: ratios {report['ratio_kernel_jobs_vs_whole_sessions']}; "
        f"written to {RESULTS / 'gpu_replay.json'}"
    )
    for error in errors:
        print("error:", error)
    return 1 if errors else 0


def cluster_gpus() -> int:
    """The GPUs of partition gpu (``sinfo``'s gres, e.g. ``gpu:h100:4``)."""
    return sum(int(gres.split(":")[-1]) for gres in gpu_nodes().values())


def _pick(values: list[float], share: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(share * len(values)))], 2)


if __name__ == "__main__":
    sys.exit(main())
