#!/usr/bin/env python3
"""Soak: the real binaries (release builds) as separate processes on 127.0.0.1 at a steady rate,
each one's resident memory and open descriptors sampled as it runs.

    scripts/soak.py SECONDS [RATE]        (scripts/soak.sh passes its arguments here)
    scripts/soak.py --summarise WORK_DIR  (the table and the memory and descriptor goals again,
                                           from a run's WORK_DIR/samples.csv)

Starts inference (one worker), the dispatcher (`--drain-rate 1000 --max-in-flight 2`, as the demo
runs it) and `load-tester run` with a workload of SECONDS
seconds at RATE requests per second. Every SOAK_SAMPLE_SECONDS it reads VmRSS from
/proc/PID/status and counts /proc/PID/fd for each process; it prints a row per minute, then per
service: RSS at the start and end of the measured span, the least-squares slope after the warm-up
(% per hour of the post-warm-up mean), the 24-hour projection from that slope, and the
descriptors' range. Last it reads the load tester's stats.json.

Goal (exit status 1 when missed):
  - nothing lost: `missing` 0, and every planned request sent and accounted for;
  - descriptors flat: the post-warm-up trend of each service adds under 2 descriptors;
  - memory: each service's slope under SOAK_MAX_PERCENT_PER_HOUR (2) after the warm-up. A measured
    span under 20 minutes cannot resolve an hourly slope, so short runs (CI-sized) check the
    relaxed rule instead: the trend grows under 5 % over the measured span.

Settings (environment): SOAK_SAMPLE_SECONDS (10), SOAK_WARMUP_SECONDS (600, at most a quarter
of the run), SOAK_MAX_PERCENT_PER_HOUR (2), SOAK_BIN_DIR (use binaries already built there
instead of building), SOAK_WORK_DIR (where the workload, logs, samples.csv and the report go;
default a new temporary directory, kept).
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ("inference", "dispatcher", "load-tester")
SHORT_SPAN = 20 * 60
SHORT_MAX_GROWTH = 0.05
MAX_FD_GROWTH = 2.0


def setting(name, default):
    value = os.environ.get(name)
    return type(default)(value) if value else default


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(bin_dir):
    """Release builds, copied to `bin_dir`: the shared target directory may be rebuilt by
    someone else while the soak runs."""
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bins"]
        + [arg for name in SERVICES for arg in ("-p", name)],
        cwd=ROOT,
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for name in SERVICES:
        shutil.copy2(os.path.join(target, "release", name), os.path.join(bin_dir, name))


def wait_ready(url, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"soak: {url} not ready after {timeout} s")


def usage(pid):
    """(RSS MiB, open descriptors) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None
    return rss_kib / 1024.0, fds


def slope(points):
    """Least-squares slope and mean of y over (t, y) points."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return (cov / var if var else 0.0), mean_y, mean_t


def start(name, bin_dir, args, work):
    log = open(os.path.join(work, f"{name}.log"), "w")
    return subprocess.Popen(
        [os.path.join(bin_dir, name)] + args,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )


def load_samples(work):
    """The samples a run wrote to WORK/samples.csv, per service: (t, rss MiB, fds)."""
    path = os.path.join(work, "samples.csv")
    samples = {name: [] for name in SERVICES}
    with open(path) as f:
        header = f.readline().strip()
        if header != "t_s,service,rss_mib,fds":
            raise SystemExit(f"{path}:1:1: not a soak samples file (header {header!r})")
        for number, line in enumerate(f, start=2):
            fields = line.strip().split(",")
            try:
                t, name, rss, fds = float(fields[0]), fields[1], float(fields[2]), int(fields[3])
            except (IndexError, ValueError):
                raise SystemExit(f"{path}:{number}:1: expected t_s,service,rss_mib,fds, "
                                 f"got {line.strip()!r}") from None
            if name not in samples:
                column = len(fields[0]) + 2
                raise SystemExit(f"{path}:{number}:{column}: unknown service {name!r}")
            samples[name].append((t, rss, fds))
    return samples


def summarise_only(work):
    """`--summarise WORK`: the per-service table and the memory and descriptor goals of a run
    that has finished (or was stopped), from its samples.csv, with the current settings
    (SOAK_MAX_PERCENT_PER_HOUR, SOAK_WARMUP_SECONDS: still at most a quarter of the run)."""
    samples = load_samples(work)
    seconds = max((s[-1][0] for s in samples.values() if s), default=0.0)
    warmup = min(setting("SOAK_WARMUP_SECONDS", 600.0), seconds / 4)
    print(f"soak: {work}: {seconds:.0f} s sampled, warm-up {warmup:g} s")
    ok = summarise(samples, warmup, setting("SOAK_MAX_PERCENT_PER_HOUR", 2.0))
    print("soak: memory and descriptor goals met" if ok else "soak: goal MISSED")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--summarise":
        return summarise_only(sys.argv[2])
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 3600
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    every = setting("SOAK_SAMPLE_SECONDS", 10.0)
    warmup = min(setting("SOAK_WARMUP_SECONDS", 600.0), seconds / 4)
    max_per_hour = setting("SOAK_MAX_PERCENT_PER_HOUR", 2.0)
    work = os.environ.get("SOAK_WORK_DIR") or tempfile.mkdtemp(prefix="soak-")
    os.makedirs(work, exist_ok=True)
    bin_dir = os.environ.get("SOAK_BIN_DIR")
    if not bin_dir:
        bin_dir = os.path.join(work, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        build(bin_dir)
    workload = os.path.join(work, "steady.txt")
    with open(workload, "w") as f:
        f.write(f"{rate}\n" * seconds)

    ports = {name: free_port() for name in SERVICES}
    inference_url = f"http://127.0.0.1:{ports['inference']}"
    dispatcher_url = f"http://127.0.0.1:{ports['dispatcher']}"
    procs = {}
    try:
        procs["inference"] = start("inference", bin_dir, [
            "--listen", f"127.0.0.1:{ports['inference']}",
            "--workers", "1",
            "--model", os.path.join(ROOT, "inference/model/efficientnet-lite0.onnx"),
            "--labels", os.path.join(ROOT, "inference/model/imagenet-labels.txt"),
        ], work)
        wait_ready(f"{inference_url}/readyz", 120)
        procs["dispatcher"] = start("dispatcher", bin_dir, [
            "--listen", f"127.0.0.1:{ports['dispatcher']}",
            "--inference-url", inference_url,
            # Not the pacing under test: drain as fast as the replica takes them, two at a time.
            "--drain-rate", "1000",
            "--max-in-flight", "2",
            "--report-url", f"http://127.0.0.1:{ports['load-tester']}/storeLatency",
        ], work)
        wait_ready(f"{dispatcher_url}/readyz", 30)
        procs["load-tester"] = start("load-tester", bin_dir, [
            "run",
            "--listen", f"127.0.0.1:{ports['load-tester']}",
            "--workload", workload,
            "--images", os.path.join(ROOT, "images"),
            "--dispatcher-url", dispatcher_url,
            "--reports-dir", os.path.join(work, "reports"),
        ], work)
        print(f"soak: {seconds} s at {rate} req/s, sampled every {every:g} s, warm-up "
              f"{warmup:g} s; work dir {work}", flush=True)
        samples = run(procs, every, work)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()

    ok = procs["load-tester"].returncode == 0
    if not ok:
        print(f"FAIL: load-tester exited with {procs['load-tester'].returncode}")
    ok &= summarise(samples, warmup, max_per_hour)
    ok &= check_nothing_lost(work, seconds * rate)
    print("soak: goal met" if ok else "soak: goal MISSED")
    return 0 if ok else 1


def run(procs, every, work):
    """Samples every process until the load tester exits; prints a row per minute."""
    header = "  ".join(f"{name + ' MiB':>15} {'fds':>4}" for name in SERVICES)
    print(f"{'min':>4}  {header}", flush=True)
    samples = {name: [] for name in SERVICES}
    started = time.time()
    next_row = 0.0
    with open(os.path.join(work, "samples.csv"), "w") as csv:
        csv.write("t_s,service,rss_mib,fds\n")
        while procs["load-tester"].poll() is None:
            t = time.time() - started
            row = {}
            for name, proc in procs.items():
                u = usage(proc.pid) if proc.poll() is None else None
                if u is None:
                    if name != "load-tester":
                        sys.exit(f"soak: {name} exited during the run (see {work}/{name}.log)")
                    continue
                samples[name].append((t, u[0], u[1]))
                csv.write(f"{t:.1f},{name},{u[0]:.2f},{u[1]}\n")
                row[name] = u
            if t >= next_row and len(row) == len(SERVICES):
                cells = "  ".join(f"{row[n][0]:>15.1f} {row[n][1]:>4}" for n in SERVICES)
                print(f"{t / 60:>4.0f}  {cells}", flush=True)
                next_row += 60.0
            csv.flush()
            time.sleep(every)
    return samples


def summarise(samples, warmup, max_per_hour):
    """Per-service table after the warm-up; whether every service meets the goal."""
    ok = True
    print()
    print(f"{'service':<12} {'RSS start':>9} {'RSS end':>8} {'slope %/h':>9} {'MiB/h':>7} "
          f"{'24 h MiB':>8} {'fd min':>6} {'fd max':>6} {'fd trend':>8}")
    for name in SERVICES:
        measured = [s for s in samples[name] if s[0] >= warmup]
        if len(measured) < 8:
            print(f"FAIL: {name}: too few samples after the warm-up ({len(measured)})")
            ok = False
            continue
        span = measured[-1][0] - measured[0][0]
        rss_slope, rss_mean, mean_t = slope([(t, rss) for t, rss, _ in measured])
        fd_slope, _, _ = slope([(t, fds) for t, _, fds in measured])
        per_hour = rss_slope * 3600 / rss_mean * 100
        # The fitted line at 24 h from the start.
        projection = rss_mean + rss_slope * (86_400 - mean_t)
        fds = [f for _, _, f in measured]
        fd_trend = fd_slope * span
        print(f"{name:<12} {measured[0][1]:>9.1f} {measured[-1][1]:>8.1f} {per_hour:>+9.2f} "
              f"{rss_slope * 3600:>+7.2f} {projection:>8.1f} {min(fds):>6} {max(fds):>6} "
              f"{fd_trend:>+8.2f}")
        if span >= SHORT_SPAN:
            if per_hour > max_per_hour:
                print(f"FAIL: {name}: RSS grows {per_hour:.2f} % per hour "
                      f"(goal < {max_per_hour:g})")
                ok = False
        else:
            growth = rss_slope * span / rss_mean
            if growth > SHORT_MAX_GROWTH:
                print(f"FAIL: {name}: RSS trend grows {growth * 100:.1f} % over {span:.0f} s")
                ok = False
        if fd_trend > MAX_FD_GROWTH:
            print(f"FAIL: {name}: open descriptors trend up by {fd_trend:.1f}")
            ok = False
    return ok


def check_nothing_lost(work, planned):
    found = glob.glob(os.path.join(work, "reports", "**", "stats.json"), recursive=True)
    if len(found) != 1:
        print(f"FAIL: expected one stats.json under {work}/reports, found {len(found)}")
        return False
    with open(found[0]) as f:
        stats = json.load(f)
    keys = ("planned", "sent", "succeeded", "failed", "rejected", "sendErrors", "missing",
            "duplicates")
    print()
    print("requests: " + ", ".join(f"{k} {stats[k]}" for k in keys))
    latency = stats.get("latencyMs") or {}
    print(f"latency ms: p50 {latency.get('p50')}, p99 {latency.get('p99')}; report {found[0]}")
    accounted = stats["succeeded"] + stats["failed"] + stats["rejected"] + stats["sendErrors"]
    ok = (stats["missing"] == 0 and stats["sent"] == planned == stats["planned"]
          and accounted == stats["sent"])
    if not ok:
        print("FAIL: requests lost or unaccounted for")
    return ok


if __name__ == "__main__":
    sys.exit(main())
