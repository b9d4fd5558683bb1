#!/usr/bin/env python3
"""`dvc-pulse snapshot --input` against DuckDB on the same export, in one run.

Generates a deterministic NDJSON export (default 1.1M lines: ten months of one city's
dossiers, with redeliveries, versions out of order and malformed lines), then times

  * `dvc-pulse snapshot --input FILE --group-by procedure` (the release binary), and
  * DuckDB (the Python package, installed from PyPI when missing) computing the same
    window: the latest version of each dossier, received in the window, by channel,

checks that both give the same counts for every procedure, and prints the wall times,
their ratio (aim: dvc-pulse <= 1.0x DuckDB) and dvc-pulse's peak RSS.

Usage: python3 benches/snapshot_vs_duckdb.py [--lines N] [--runs R] [--bin PATH]
"""

import argparse
import csv
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICT = dt.timezone(dt.timedelta(hours=7))


def need_duckdb():
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("installing duckdb from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb"], check=True)
    import duckdb

    return duckdb


def release_binary(path):
    if path:
        return Path(path)
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/dvc-pulse/target"))
    subprocess.run(
        ["cargo", "build", "--release", "-p", "dvc-pulse"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
    )
    return target / "release" / "dvc-pulse"


def reference():
    """Communes of Hồ Chí Minh City and the catalogue's national procedure codes."""
    with open(ROOT / "schemas/reference/localities-2025.csv", newline="") as f:
        communes = [r["code"] for r in csv.DictReader(f)
                    if r["level"] == "commune" and r["parent_code"] == "79"]
    with open(ROOT / "schemas/reference/services.csv", newline="") as f:
        procedures = sorted({c for r in csv.DictReader(f) for c in r["procedure_codes"].split(";") if c})
    return communes, procedures


def ts(t):
    return t.isoformat(timespec="seconds")


def versions_of(rng, n, start, communes, procedures):
    """The versions of dossier `n`, in delivery order."""
    received = dt.datetime.combine(start + dt.timedelta(days=rng.randrange(300)), dt.time(), ICT)
    received += dt.timedelta(seconds=rng.randrange(86400))
    base = {
        "dossier_id": f"HCM-{n:08d}",
        "procedure_code": rng.choice(procedures),
        "locality_code": rng.choice(communes),
        "channel": rng.choices(["online", "in_person", "postal"], [60, 35, 5])[0],
        "status": "received",
        "received_at": ts(received),
        "due_at": ts(received + dt.timedelta(days=7)),
        "updated_at": ts(received),
    }
    if rng.random() < 0.05:  # never received
        base["status"] = "new"
        del base["received_at"], base["due_at"]
    versions = [base]
    if base["status"] == "received" and rng.random() < 0.6:
        t = received + dt.timedelta(hours=rng.randrange(1, 48))
        versions.append({**base, "status": "processing", "updated_at": ts(t)})
        if rng.random() < 0.7:
            t += dt.timedelta(hours=rng.randrange(1, 24 * 9))
            versions.append({**base, "status": "processed", "finished_at": ts(t), "updated_at": ts(t)})
    if rng.random() < 0.10:  # out of order: the newest first, the older ones stale
        versions.reverse()
    return versions


def generate(path, lines, end):
    """Writes at least `lines` NDJSON lines (2% of them held back to the end, as late
    deliveries); returns the number written."""
    rng = random.Random(7)
    communes, procedures = reference()
    start = end - dt.timedelta(days=300)
    late, written, n = [], 0, 0
    with open(path, "w") as f:
        while written < lines:
            n += 1
            for v in versions_of(rng, n, start, communes, procedures):
                line = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
                if rng.random() < 0.005:  # malformed: cut in half
                    line = line[: len(line) // 2]
                copies = 2 if rng.random() < 0.05 else 1  # redelivered byte for byte
                for _ in range(copies):
                    if rng.random() < 0.02:
                        late.append(line)
                    else:
                        f.write(line + "\n")
                    written += 1
        f.write("".join(line + "\n" for line in late))
    return written


def snapshot_args(binary, path, frm, to, out):
    return [binary, "snapshot", "--input", path, "--group-by", "procedure",
            "--from", frm, "--to", to, "--format", "json", "-o", out]


def run_dvc_pulse(binary, path, frm, to, out):
    started = time.perf_counter()
    subprocess.run(
        snapshot_args(binary, path, frm, to, out),
        check=True,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    wall = time.perf_counter() - started
    rows = json.loads(Path(out).read_text())["rows"]
    counts = {
        r["procedure_code"]: (r["total"], r["online"], r["in_person"], r["postal"])
        for r in rows
        if r["total"]
    }
    return wall, counts


def peak_rss_mb(binary, path, frm, to, out):
    """dvc-pulse's own peak RSS, in a run of its own. A child of this (large) Python
    process would report this process's size: the kernel carries the RSS before exec into
    the child's maximum. So a small Python runs the binary and reports its children's
    peak (the figure is the binary's, or that small Python's 10 MB if ever larger)."""
    measure = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", measure, *snapshot_args(binary, path, frm, to, out)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    return int(done.stdout.strip()) / 1024


DUCKDB_SQL = """
WITH raw AS (
  SELECT * FROM read_json('{path}', format = 'newline_delimited', ignore_errors = true,
    columns = {{dossier_id: 'VARCHAR', procedure_code: 'VARCHAR', channel: 'VARCHAR',
               status: 'VARCHAR', received_at: 'VARCHAR', updated_at: 'VARCHAR'}})
), latest AS (
  SELECT * FROM raw WHERE dossier_id IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY dossier_id ORDER BY updated_at DESC) = 1
)
SELECT procedure_code, count(*) AS total,
       count(*) FILTER (channel = 'online') AS online,
       count(*) FILTER (channel = 'in_person') AS in_person,
       count(*) FILTER (channel = 'postal') AS postal
FROM latest
WHERE status NOT IN ('new', 'rejected') AND received_at IS NOT NULL
  AND CAST(substr(received_at, 1, 10) AS DATE) BETWEEN DATE '{frm}' AND DATE '{to}'
GROUP BY procedure_code
"""


def run_duckdb(duckdb, path, frm, to):
    # Timestamps are written with their +07:00 offset, so the first ten characters are
    # the ICT day, and the text order of updated_at is the time order.
    started = time.perf_counter()
    con = duckdb.connect()
    rows = con.execute(DUCKDB_SQL.format(path=path, frm=frm, to=to)).fetchall()
    con.close()
    wall = time.perf_counter() - started
    return wall, {r[0]: tuple(r[1:]) for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin")
    args = ap.parse_args()
    duckdb = need_duckdb()
    binary = release_binary(args.bin)
    end = dt.date.today() - dt.timedelta(days=5)
    frm, to = str(end - dt.timedelta(days=29)), str(end)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "export.ndjson")
        written = generate(path, args.lines, end)
        size = os.path.getsize(path)
        print(f"export: {written:,} lines, {size / 1e6:.0f} MB; window {frm}..{to} by procedure")
        ours, theirs = [], []
        for _ in range(args.runs):
            wall, mine = run_dvc_pulse(binary, path, frm, to, os.path.join(d, "out.json"))
            ours.append(wall)
            wall, duck = run_duckdb(duckdb, path, frm, to)
            theirs.append(wall)
        rss_mb = peak_rss_mb(binary, path, frm, to, os.path.join(d, "out.json"))
        if mine != duck:
            diff = {k: (mine.get(k), duck.get(k)) for k in set(mine) | set(duck) if mine.get(k) != duck.get(k)}
            print(f"MISMATCH in {len(diff)} procedures, e.g. {list(diff.items())[:3]}")
            sys.exit(1)
        total = [sum(c[i] for c in mine.values()) for i in range(4)]
        print(f"same counts in both: {len(mine)} procedures, total {total[0]:,} "
              f"(online {total[1]:,}, in person {total[2]:,}, postal {total[3]:,})")
        best_ours, best_theirs = min(ours), min(theirs)
        print(f"dvc-pulse snapshot --input: best {best_ours:.2f} s of {args.runs} "
              f"({size / 1e6 / best_ours:.0f} MB/s), peak RSS {rss_mb:.0f} MB")
        print(f"DuckDB {duckdb.__version__}:             best {best_theirs:.2f} s of {args.runs}")
        print(f"ratio: {best_ours / best_theirs:.2f}x DuckDB's wall time (aim <= 1.0x)")


if __name__ == "__main__":
    main()
