#!/usr/bin/env python3
"""bench/perfcheck.py — performance regression check on deterministic figures.

Runs ek-perfcheck (bench/perfcheck.c) once under `valgrind --tool=callgrind`
on one thread with EK_ISA=avx2, reads the per-case callgrind dumps
(instructions) and the driver's own allocation counts, and compares them
with the committed baseline (bench/baselines/perfcheck.json):

  * a figure more than --tolerance percent (default 5) above its baseline
    fails the check; every figure is printed before / after;
  * instruction counts depend on the compiler, glibc, oneDNN, valgrind and
    the ISA valgrind exposes: when any of those differs from the baseline's,
    the check is skipped with a message naming the difference (exit 0), not
    failed spuriously.  Record a baseline for this toolchain with
    `make perf-baseline` (a deliberate, reviewed change);
  * without valgrind the check is skipped with a message (exit 0).

Usage:
  python3 bench/perfcheck.py --bin build/ek-perfcheck --models build/models [--update]
  [--baseline bench/baselines/perfcheck.json] [--tolerance 5] [--strict]

--strict turns the skips into failures (exit 3), for CI machines whose
toolchain the baseline was recorded on.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# Figures compared, per case: (key, unit shown, allowed to be zero-based).
FIGURES = [("instructions_per_call", "instr"), ("allocs_per_call", "allocs"),
           ("alloc_bytes_per_call", "bytes")]


def run_driver(binary, models, workdir):
    env = dict(os.environ, OMP_NUM_THREADS="1", EK_ISA="avx2")
    out = os.path.join(workdir, "cg.%p")
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--callgrind-out-file=" + out,
           binary, models]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"perf-check: ek-perfcheck failed under valgrind (exit {p.returncode})")
    report = json.loads(p.stdout)
    instr = {}
    for path in glob.glob(os.path.join(workdir, "cg.*")):
        name, total = None, None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("desc: Trigger: Client Request: "):
                    name = line.split(": ", 3)[-1].strip()
                elif line.startswith("totals:"):
                    total = int(line.split()[1])
        if name is not None and total is not None:
            instr[name] = total
    cases = {}
    for c in report["cases"]:
        if c["name"] not in instr:
            raise SystemExit(f"perf-check: no callgrind dump for case {c['name']}")
        cases[c["name"]] = {
            "what": c["what"],
            "calls": c["calls"],
            "instructions_per_call": round(instr[c["name"]] / c["calls"]),
            "allocs_per_call": c["allocs_per_call"],
            "alloc_bytes_per_call": c["alloc_bytes_per_call"],
        }
    return report["toolchain"], cases


def valgrind_version():
    p = subprocess.run(["valgrind", "--version"], stdout=subprocess.PIPE, text=True)
    return p.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the ek-perfcheck executable")
    ap.add_argument("--models", required=True, help="directory holding tiny-mean (tools/make_test_models.sh)")
    ap.add_argument("--baseline", default=os.path.join(os.path.dirname(__file__), "baselines", "perfcheck.json"))
    ap.add_argument("--tolerance", type=float, default=5.0, help="percent a figure may grow (default 5)")
    ap.add_argument("--update", action="store_true", help="write the baseline instead of checking")
    ap.add_argument("--strict", action="store_true", help="fail (exit 3) instead of skipping")
    a = ap.parse_args()
    t0 = time.monotonic()

    def skip(msg):
        print(f"perf-check: SKIPPED: {msg}")
        sys.exit(3 if a.strict else 0)

    if not shutil.which("valgrind"):
        skip("valgrind is not installed (apt-get install valgrind); instruction counts need callgrind")
    if not os.path.isfile(os.path.join(a.models, "tiny-mean", "config.json")):
        raise SystemExit(f"perf-check: {a.models}/tiny-mean not found (make models, or tools/make_test_models.sh)")
    with tempfile.TemporaryDirectory(prefix="ek-perfcheck-") as tmp:
        toolchain, cases = run_driver(a.bin, a.models, tmp)
    toolchain["valgrind"] = valgrind_version()
    if not toolchain.get("callgrind_requests"):
        skip("ek-perfcheck was built without valgrind/callgrind.h: its counts would include setup")
    elapsed = time.monotonic() - t0

    if a.update:
        os.makedirs(os.path.dirname(os.path.abspath(a.baseline)), exist_ok=True)
        doc = {"what": "ek-perfcheck figures per call (bench/perfcheck.py); update with make perf-baseline",
               "tolerance_percent": a.tolerance, "toolchain": toolchain, "cases": cases}
        with open(a.baseline, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
        for name, c in cases.items():
            print(f"  {name:12s} {c['instructions_per_call']:>12,} instr/call  {c['allocs_per_call']:>7.2f} allocs/call"
                  f"  {c['alloc_bytes_per_call']:>10.1f} bytes/call")
        print(f"perf-baseline: wrote {a.baseline} ({len(cases)} cases, {elapsed:.1f} s)")
        return 0

    if not os.path.isfile(a.baseline):
        skip(f"no baseline at {a.baseline} (make perf-baseline records one)")
    with open(a.baseline, encoding="utf-8") as f:
        base = json.load(f)
    diff = {k: (base["toolchain"].get(k), v) for k, v in toolchain.items() if base["toolchain"].get(k) != v}
    if diff:
        lines = "\n".join(f"    {k}: baseline {b!r}, here {h!r}" for k, (b, h) in sorted(diff.items()))
        skip("the toolchain differs from the baseline's, so instruction counts are not comparable:\n"
             f"{lines}\n  (make perf-baseline records figures for this toolchain)")

    tol = a.tolerance / 100.0
    failed = []
    print(f"{'case':12s} {'figure':8s} {'baseline':>14s} {'now':>14s} {'change':>8s}")
    for name in sorted(set(base["cases"]) | set(cases)):
        if name not in cases:
            print(f"{name:12s} (in the baseline, not run: removed?)")
            continue
        if name not in base["cases"]:
            print(f"{name:12s} (new case, no baseline: make perf-baseline)")
            continue
        for key, unit in FIGURES:
            old, new = base["cases"][name][key], cases[name][key]
            if old == 0:
                change = 0.0 if new == 0 else float("inf")
            else:
                change = (new - old) / old
            # Allocation counts are small integers: any growth from zero is a regression.
            bad = change > tol
            mark = "  FAIL" if bad else ("  (faster)" if change < -tol else "")
            ch = "new" if change == float("inf") else f"{change * 100:+.1f}%"
            print(f"{name:12s} {unit:8s} {old:>14,.1f} {new:>14,.1f} {ch:>8s}{mark}")
            if bad:
                failed.append(f"{name} {unit}")
    elapsed = time.monotonic() - t0
    if failed:
        print(f"perf-check: FAILED ({elapsed:.1f} s): grew more than {a.tolerance:g}%: " + ", ".join(failed))
        print("  if the growth is intended, run make perf-baseline and commit the new baseline with the change")
        return 1
    print(f"perf-check: ok ({len(cases)} cases within {a.tolerance:g}% of the baseline, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
