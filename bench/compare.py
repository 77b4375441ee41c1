#!/usr/bin/env python3
"""Ours against our PyTorch eager reference, in the same call (issue 16): `make bench` runs this.

Runs `unas bench step search|train` (ours) and `bench/reference.py search|train` (the reference) with
the same flags, alternately (A B A B …, `--rounds` ≥ 5), one process per invocation, each doing
`--warmup-steps` untimed steps then `--steps` timed ones and printing one JSON line:

    {"impl": "unas"|"reference", "what": "search"|"train", "ms_per_step": [...], "images_per_s": x,
     "batch": B, "threads": T, "device": "...", "torch": "...", "peak_gpu_mib": x|null,
     "precision": "fp32"|"bf16", "profile": "dev"|"release" (ours only)}

Each child's peak resident memory comes from `os.wait4` (ru_maxrss); on a GPU its peak GPU memory
also from nvidia-smi, polled while it runs (the same measure for both sides). The figures are medians over
rounds; every figure is also quoted as the ratio ours / reference of this call. Prints a table and
appends a dated section to BENCHMARKS.md (created with a header that explains the method). A child
that fails stops everything with its stderr tail, and nothing is appended.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCHED = "unas-batched"  # ours with `--batched-passes`, a third arm of each round
GRAPHED = "unas-cuda-graphs"  # ours with `--cuda-graphs` (training, CUDA only), a third arm
REFERENCE = ROOT / "bench" / "reference.py"
KEYS = ("impl", "what", "ms_per_step", "images_per_s", "batch", "threads", "device",
        "peak_gpu_mib", "precision")

HEADER = """# Benchmarks: `unas` against a PyTorch eager reference

Appended by `make bench` (`bench/compare.py`), one section per call; sections are never edited.

**Method.** Ours (`unas bench step search|train`) and our own PyTorch eager implementation of the
same step (`bench/reference.py`: same shapes, estimator, objective and number of forward/backward
passes, with the official per-op host read of the 0.05 op-skip) run alternately, A B A B …, one
process per invocation, on random resident CIFAR-shaped data (3×32×32, 10 classes, fixed seed). Each
invocation runs its warm-up steps untimed, then the timed steps, each timed with a device
synchronisation; its images/s is the median over its timed steps of batch / step time. A section's
figures are medians over its rounds. Peak memory is each process's peak resident set (`wait4`
ru_maxrss: it includes the loaded libraries, libtorch in both and the Python interpreter in the
reference) and, on a GPU, each process's peak GPU memory as nvidia-smi lists it (polled every 0.1 s:
CUDA context plus the caching allocator's reserve, the same measure for both) and the reference's
own `torch.cuda.max_memory_allocated`. "CPU s per invocation"
is the process's user + system CPU time (`wait4`; start-up and warm-up included): less sensitive to
the load of a shared machine than wall time, which it does not replace. Every figure is quoted as
the ratio **ours / reference measured in the same call** (images/s above 1: ours is faster; ms/step
and memory below 1: ours is lower). With `--batched-passes` each search round has a third arm, ours
with `search.batched_passes` (A B C A B C …), quoted against the reference and against plain ours. Absolute figures move with the machine's load (the load average
is recorded); the same-call ratio is the figure to quote. The paper tier runs a release build: each
section names the build profile.
"""


# ------------------------------------------------------------------------------------------------
# Commands

def step_flags(args, what):
    """The flags both implementations take, for one step kind."""
    common = ["--warmup-steps", str(args.warmup_steps), "--steps", str(args.steps),
              "--threads", str(args.threads), "--device", args.device,
              "--precision", args.precision]
    if what == "search":
        return ["--layers", str(args.search_layers), "--channels", str(args.search_channels),
                "--batch", str(args.search_batch), "--estimator", args.estimator,
                "--objective", args.objective, *common, "--seed", str(args.seed)]
    return ["--genotype", args.genotype, "--layers", str(args.train_layers),
            "--channels", str(args.train_channels), "--batch", str(args.train_batch),
            "--aux-weight", str(args.aux_weight), "--drop-path", str(args.drop_path), *common]


def commands(args, what):
    """The invocations of one round, in the order they run: ours, ours with batched passes (search
    with --batched-passes only) or with CUDA graphs (train with --cuda-graphs only), the reference."""
    flags = step_flags(args, what)
    ours = [str(args.unas), "bench", "step", what, *flags]
    cmds = {"unas": [*ours, "--json"]}
    if args.batched_passes and what == "search":
        cmds[BATCHED] = [*ours, "--batched-passes", "--json"]
    if args.cuda_graphs and what == "train":
        cmds[GRAPHED] = [*ours, "--cuda-graphs", "--json"]
    cmds["reference"] = [str(args.python), str(REFERENCE), what, *flags]
    return cmds


def shapes(args, what):
    if what == "search":
        return (f"DARTS-space supernet L={args.search_layers} C={args.search_channels}, "
                f"batch {args.search_batch}, {args.estimator} + {args.objective}, pair penalty 0.2, "
                "one architecture per example"
                )
    return (f"{args.genotype} L={args.train_layers} C={args.train_channels}, "
            f"batch {args.train_batch}, auxiliary weight {args.aux_weight}, "
            f"drop-path {args.drop_path}")


# ------------------------------------------------------------------------------------------------
# Running one child

class ChildFailed(Exception):
    pass


def tail(data, lines=40):
    text = data.decode("utf-8", "replace").rstrip("\n").splitlines()
    return "\n".join(text[-lines:]) if text else "(empty)"


def smi_used_mib(text, pid):
    """The GPU memory (MiB) nvidia-smi's `--query-compute-apps=pid,used_memory` output gives `pid`
    (summed over the GPUs it uses), or None when it lists no such process."""
    used = [int(f[1]) for f in (line.split(",") for line in text.splitlines())
            if len(f) == 2 and f[0].strip() == str(pid) and f[1].strip().isdigit()]
    return sum(used) if used else None


class GpuPeak:
    """The peak GPU memory of one child as nvidia-smi sees it (CUDA context + the caching allocator's
    reserve), polled every 0.1 s: one measure for both sides, where torch.cuda.max_memory_allocated
    exists only in the reference. None where there is no nvidia-smi or the child never showed up."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, None, threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        cmd = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        while not self.stop.is_set():
            try:
                text = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                return
            used = smi_used_mib(text, self.pid)
            if used is not None:
                self.peak = used if self.peak is None else max(self.peak, used)
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak


def run_child(cmd, env, timeout_s, gpu=False):
    """Runs cmd; returns (exit code, stdout, stderr, peak RSS in MiB, user + system CPU seconds, peak
    GPU memory from nvidia-smi in MiB or None)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        except OSError as e:
            raise ChildFailed(f"could not start `{shlex.join(cmd)}`: {e}") from e
        timer = threading.Timer(timeout_s, p.kill) if timeout_s > 0 else None
        if timer:
            timer.start()
        smi = GpuPeak(p.pid) if gpu else None
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            if timer:
                timer.cancel()
            gpu_mib = smi.finish() if smi else None
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        cpu_s = usage.ru_utime + usage.ru_stime
        return (p.returncode, out.read(), err.read(), usage.ru_maxrss / 1024.0,  # KiB → MiB
                cpu_s, gpu_mib)


def parse_result(stdout, impl, what, args, batch):
    """The child's one JSON line, checked against what was asked."""
    lines = [line for line in stdout.decode("utf-8", "replace").splitlines() if line.startswith("{")]
    if len(lines) != 1:
        raise ValueError(f"expected exactly one JSON line on stdout, got {len(lines)}")
    r = json.loads(lines[0])
    missing = [k for k in KEYS if k not in r]
    if missing:
        raise ValueError(f"the JSON line lacks {', '.join(missing)}")
    want = {"impl": impl, "what": what, "batch": batch, "threads": args.threads,
            "precision": args.precision}
    for k, v in want.items():
        if r[k] != v:
            raise ValueError(f"`{k}` is {r[k]!r}, asked for {v!r}")
    if len(r["ms_per_step"]) != args.steps:
        raise ValueError(f"{len(r['ms_per_step'])} timed steps, asked for {args.steps}")
    return r


def measure(cmd, impl, what, args, env, batch, round_no):
    code, out, err, rss, cpu_s, gpu_mib = run_child(cmd, env, args.timeout,
                                                    gpu=args.device.startswith("cuda"))
    where = f"{impl} {what} (round {round_no})"
    if code != 0:
        raise ChildFailed(f"{where} failed with exit code {code}: `{shlex.join(cmd)}`\n"
                          f"--- last lines of its stderr ---\n{tail(err)}")
    try:
        r = parse_result(out, impl, what, args, batch)
    except (ValueError, json.JSONDecodeError) as e:
        raise ChildFailed(f"{where}: {e}: `{shlex.join(cmd)}`\n--- its stdout ---\n{tail(out)}\n"
                          f"--- last lines of its stderr ---\n{tail(err)}") from e
    if impl == "unas" and args.profile and r.get("profile", args.profile) != args.profile:
        raise ChildFailed(f"{where} reports the {r['profile']} profile but --profile says "
                          f"{args.profile}: is --unas {args.unas} the binary that was built?")
    r["peak_rss_mib"] = rss
    r["peak_gpu_smi_mib"] = gpu_mib
    r["cpu_s"] = cpu_s
    r["ms_median"] = statistics.median(r["ms_per_step"])
    return r


# ------------------------------------------------------------------------------------------------
# Rounds and medians

def child_env(args):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    return env


def run_rounds(args, what):
    """A B A B …: per round ours then the reference; returns the per-round results of each."""
    cmds = commands(args, what)
    batch = args.search_batch if what == "search" else args.train_batch
    env = child_env(args)
    results = {arm: [] for arm in cmds}
    for r in range(1, args.rounds + 1):
        for impl, cmd in cmds.items():
            print(f"[{what}] round {r}/{args.rounds}: {impl} …", file=sys.stderr, flush=True)
            res = measure(cmd, "reference" if impl == "reference" else "unas", what, args, env,
                          batch, r)
            if impl == BATCHED and res.get("batched_passes") is not True:
                raise ChildFailed(f"{impl} (round {r}) did not report batched passes: is "
                                  f"--unas {args.unas} built from this checkout?")
            if impl == GRAPHED and res.get("cuda_graphs") is not True:
                raise ChildFailed(f"{impl} (round {r}) did not report CUDA graphs: is "
                                  f"--unas {args.unas} built from this checkout?")
            results[impl].append(res)
            print(f"[{what}] round {r}/{args.rounds}: {impl} {res['images_per_s']:.3f} images/s, "
                  f"{res['ms_median']:.1f} ms/step, peak RSS {res['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)
    return results


def import_rss(args):
    """Peak RSS of the reference's interpreter doing nothing but `import torch`: the part of its
    peak memory that is the loaded libraries (the full wheel loads its CUDA libraries on a CPU too)."""
    code, _, err, rss, _, _ = run_child([str(args.python), "-W", "ignore", "-c", "import torch"],
                                  child_env(args), args.timeout)
    if code != 0:
        raise ChildFailed(f"`{args.python} -c 'import torch'` failed with exit code {code}\n"
                          f"--- last lines of its stderr ---\n{tail(err)}")
    return rss


def median_of(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarise(results, ours="unas", ref="reference"):
    """Medians over rounds, ratios ours / ref (two arms of the same rounds), and the spread of the
    per-round ratio."""
    rows = []
    for label, key in [("images/s", "images_per_s"), ("ms/step", "ms_median"),
                       ("peak RSS (MiB)", "peak_rss_mib"),
                       ("peak GPU memory, nvidia-smi (MiB)", "peak_gpu_smi_mib"),
                       ("peak GPU memory allocated, torch (MiB)", "peak_gpu_mib"),
                       ("CPU s per invocation", "cpu_s")]:
        a, b = median_of(results[ours], key), median_of(results[ref], key)
        ratio = a / b if a is not None and b else None
        rows.append((label, a, b, ratio))
    per_round = [x["images_per_s"] / y["images_per_s"]
                 for x, y in zip(results[ours], results[ref])]
    return rows, per_round


def comparisons(results):
    """(heading, ours arm, baseline arm) of every table a step's results give."""
    out = [("ours / reference", "unas", "reference")]
    if BATCHED in results:
        out += [("ours with batched passes / reference", BATCHED, "reference"),
                ("ours with batched passes / ours", BATCHED, "unas")]
    if GRAPHED in results:
        out += [("ours with CUDA graphs / reference", GRAPHED, "reference"),
                ("ours with CUDA graphs / ours", GRAPHED, "unas")]
    return out


# ------------------------------------------------------------------------------------------------
# Provenance and output

def sh(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine():
    info = {"cpu": None, "logical": 0, "cores": None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and info["cpu"] is None:
                    info["cpu"] = v
                if k == "processor":
                    info["logical"] += 1
                if k == "cpu cores" and info["cores"] is None:
                    info["cores"] = v
    except OSError:
        pass
    info["cpu"] = info["cpu"] or platform.processor() or "unknown CPU"
    info["nproc"] = sh(["nproc"])
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        info["mem_gib"] = kib / 2**20
    except (OSError, StopIteration, ValueError):
        info["mem_gib"] = None
    return info


def git_commit():
    head = sh(["git", "rev-parse", "--short=12", "HEAD"]) or "unknown"
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"])
    return head + (" (dirty)" if dirty else "")


def fmt(x, ratio=False):
    if x is None:
        return "–"
    if ratio:
        return f"{x:.2f}×"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def section_table(what, args, rows, per_round, heading="ours / reference"):
    ours, ref = heading.split(" / ")
    lines = [f"### {what}: {shapes(args, what)}" + ("" if heading == "ours / reference"
                                                     else f" — {heading}"), "",
             f"| figure (median of rounds) | {ours} | {ref} | {heading} |",
             "| --- | ---: | ---: | ---: |"]
    for label, ours, ref, ratio in rows:
        lines.append(f"| {label} | {fmt(ours)} | {fmt(ref)} | {fmt(ratio, True)} |")
    lines.append(f"| images/s ratio per round (min – median – max) | | | "
                 f"{min(per_round):.2f}× – {statistics.median(per_round):.2f}× – "
                 f"{max(per_round):.2f}× |")
    return lines


def profile_of(args, results):
    """The build profile: what ours reports, checked against what the Makefile built."""
    reported = {r.get("profile") for rs in results.values() for r in rs["unas"]} - {None}
    if len(reported) > 1:
        raise ChildFailed(f"ours reported several build profiles: {sorted(reported)}")
    profile = reported.pop() if reported else args.profile
    if args.profile and profile != args.profile:
        raise ChildFailed(f"ours reports the {profile} profile but --profile says {args.profile}: "
                          f"is --unas {args.unas} the binary that was built?")
    return profile or "unknown"


def section(args, results, load, started, base_rss):
    m = machine()
    profile = profile_of(args, results)
    first_ref = next(iter(results.values()))["reference"][0]
    first_ours = next(iter(results.values()))["unas"][0]
    cores = f", {m['cores']} cores per socket" if m["cores"] else ""
    lines = [f"## {started:%Y-%m-%d %H:%M} UTC · {' + '.join(results)} · {profile} build · "
             f"commit {git_commit()}", "",
             f"- machine: {m['cpu']}, {m['logical']} logical CPUs{cores}, `nproc` {m['nproc']}, "
             + (f"{m['mem_gib']:.1f} GiB memory; " if m["mem_gib"] else "")
             + f"load average {load[0]:.2f} at the start, {load[1]:.2f} at the end"
             + (f"; oneDNN capped at {os.environ['ONEDNN_MAX_CPU_ISA']} for both sides"
                if os.environ.get("ONEDNN_MAX_CPU_ISA") else ""),
             f"- ours: `{args.unas}` ({profile} profile, libtorch {first_ours.get('libtorch', '?')}); "
             f"reference: torch {first_ref['torch']} eager, Python at `{args.python}`; "
             f"its `import torch` alone peaks at {base_rss:.0f} MiB RSS (included in its figures)",
             f"- threads {args.threads}, device {first_ref['device']}, precision {args.precision}, "
             f"{args.rounds} rounds "
             f"(A B A B …), {args.warmup_steps} warm-up + {args.steps} timed steps per invocation", ""]
    for what, res in results.items():
        for heading, ours, ref in comparisons(res):
            rows, per_round = summarise(res, ours, ref)
            lines += section_table(what, args, rows, per_round, heading) + [""]
        cmds = commands(args, what)
        lines += [f"{arm}: `{shlex.join(cmd)}`  " for arm, cmd in cmds.items()] + [""]
    return "\n".join(lines) + "\n"


def append(out, text):
    """Appends a section (creating the file with its header); written whole, then renamed."""
    old = out.read_text() if out.exists() else HEADER
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(old.rstrip("\n") + "\n\n" + text)
    os.replace(tmp, out)


def print_table(results, args):
    for what, res in results.items():
        for heading, ours_arm, ref_arm in comparisons(res):
            rows, per_round = summarise(res, ours_arm, ref_arm)
            print(f"\n{what}: {shapes(args, what)} — {heading}")
            print(f"  {'figure':<40}{ours_arm:>14}{ref_arm:>12}{'ratio':>10}")
            for label, ours, ref, ratio in rows:
                print(f"  {label:<40}{fmt(ours):>14}{fmt(ref):>12}{fmt(ratio, True):>10}")
            print(f"  images/s ratio per round: " + ", ".join(f"{x:.2f}×" for x in per_round))


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_python = ROOT / ".deps" / "bench-venv" / "bin" / "python"
    p.add_argument("--unas", type=Path, default=ROOT / "target" / "release" / "unas",
                   help="our binary (default: the release build)")
    p.add_argument("--python", type=Path,
                   default=default_python if default_python.exists() else Path(sys.executable),
                   help="a Python with the full torch wheel (default: .deps/bench-venv)")
    p.add_argument("--profile", choices=["release", "dev"],
                   help="the profile --unas was built with (checked against what it reports)")
    p.add_argument("--what", choices=["search", "train", "both"], default="both")
    p.add_argument("--rounds", type=int, default=5, help="A B pairs (≥ 5)")
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps per invocation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batched-passes", action="store_true",
                   help="search: a third arm per round, ours with the gen-gap training and "
                        "validation passes as one forward (search.batched_passes)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="train (CUDA only): a third arm per round, ours with each step a replay of "
                        "its CUDA graph (train.cuda_graphs)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="both sides' forwards: fp32, or under bf16 autocast")
    p.add_argument("--search-layers", type=int, default=8)
    p.add_argument("--search-channels", type=int, default=16)
    p.add_argument("--search-batch", type=int, default=32)
    p.add_argument("--estimator", choices=["gsm", "reinforce", "rebar"], default="rebar")
    p.add_argument("--objective", choices=["train", "val", "gengap"], default="gengap")
    p.add_argument("--genotype", default="UNAS_CIFAR10")
    p.add_argument("--train-layers", type=int, default=20)
    p.add_argument("--train-channels", type=int, default=36)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--aux-weight", type=float, default=0.4)
    p.add_argument("--drop-path", type=float, default=0.2)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per invocation (0: none)")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    # absolute, without resolving links (a venv's bin/python is a link that must stay one)
    args.unas, args.python, args.out = (Path(os.path.abspath(x))
                                        for x in (args.unas, args.python, args.out))
    if args.rounds < 5:
        p.error("--rounds must be at least 5 (medians of at least 5 rounds)")
    if args.steps < 1 or args.warmup_steps < 0 or args.threads < 1:
        p.error("--steps and --threads must be ≥ 1, --warmup-steps ≥ 0")
    return args


def check_paths(args):
    if not args.unas.is_file():
        sys.exit(f"compare.py: error: no unas binary at {args.unas}: build it with "
                 "`cargo build --release --bin unas` (or run `make bench`), or pass --unas PATH")
    if not args.python.is_file():
        sys.exit(f"compare.py: error: no Python at {args.python}: run `make bench-venv` "
                 "(installs torch into .deps/bench-venv), or pass --python PATH")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    whats = ["search", "train"] if args.what == "both" else [args.what]
    if args.dry_run:
        for what in whats:
            for impl, cmd in commands(args, what).items():
                print(f"{what} {impl}: {shlex.join(cmd)}")
        print(f"{args.rounds} rounds, alternating {', '.join(commands(args, whats[0]))}; "
              f"appends to {args.out}")
        return 0
    check_paths(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()[0]
    try:
        base_rss = import_rss(args)
        results = {what: run_rounds(args, what) for what in whats}
        text = section(args, results, (load0, os.getloadavg()[0]), started, base_rss)
    except ChildFailed as e:
        print(f"compare.py: error: {e}\nnothing was appended to {args.out}", file=sys.stderr)
        return 1
    print_table(results, args)
    print(f"\n(the reference's `import torch` alone: {base_rss:.0f} MiB peak RSS)")
    append(args.out, text)
    print(f"\nappended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
