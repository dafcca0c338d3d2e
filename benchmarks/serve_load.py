"""Load test of `ulmfit serve` (issue 17 §5): N concurrent clients for S seconds, micro-batching on and off.

Starts `ulmfit serve DIR --port 0` as a separate process (so the clients' threads do not share its interpreter),
then runs `--clients` threads, each on its own keep-alive HTTP connection, sending one text per POST /predict,
back to back, for `--seconds`. Texts are drawn in turn from `--data FILE` (CSV/TSV/JSONL/txt) or the test split
of `--dataset NAME`. Reports requests/s, p50/p95/max latency, errors (any status but 200, or a failed
connection) and the server's mean micro-batch size (texts per forward pass, from /health).

`--compare` runs the same load twice, with micro-batching as served by default (`--max-batch 64`) and without it
(`--max-batch 1`: each request alone), one after the other on the same machine.

    python benchmarks/serve_load.py RUN_DIR --dataset clickbait --compare [--int8] \
        [--out benchmarks/results/serve_load.txt]
    python benchmarks/serve_load.py RUN_DIR --data test.csv --clients 8 --seconds 20 --json   # the slow test's call
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ulmfit.runtime import cpu_flags, cpu_name  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a classify run dir")
    parser.add_argument("--data", type=Path, help="texts to send: a labelled file or a .txt with one per line")
    parser.add_argument("--dataset", help="or a registry dataset's test split")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=0, help="the server's torch threads (0: torch's default)")
    parser.add_argument("--int8", action="store_true", help="serve with --int8")
    parser.add_argument("--compare", action="store_true", help="also run with micro-batching off (--max-batch 1)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (the first configuration)")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    return parser.parse_args(argv)


def load_texts(args) -> list[str]:
    if args.dataset:
        from ulmfit.data.download import load_labelled
        return list(load_labelled(args.dataset, seed=0)["test"][0])
    if args.data is None:
        raise SystemExit("give --data FILE or --dataset NAME")
    if args.data.suffix == ".txt":
        return [line for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    from ulmfit.data.readers import read_labelled_file
    return list(read_labelled_file(args.data)[0])


def start_server(args, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    cmd = [sys.executable, "-m", "ulmfit", "serve", str(args.run_dir), "--port", "0", "--threads", str(args.threads),
           *(["--int8"] if args.int8 else []), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stderr.readline()
    if "serving" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
    host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")
    return proc, host, int(port)


def client(host: str, port: int, texts: list[str], offset: int, stop_at: float, latencies: list, errors: list):
    conn, i = None, offset
    while time.perf_counter() < stop_at:
        body = json.dumps({"texts": [texts[i % len(texts)]]})
        i += 1
        start = time.perf_counter()
        try:
            conn = conn or http.client.HTTPConnection(host, port, timeout=60)
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
                continue
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
            conn = None
            continue
        latencies.append(time.perf_counter() - start)
    if conn is not None:
        conn.close()


def health(host: str, port: int) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/health")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def run_load(args, texts: list[str], extra: list[str]) -> dict:
    proc, host, port = start_server(args, extra)
    try:
        client(host, port, texts, 0, time.perf_counter() + 1.0, [], [])           # warm-up, one client, 1 s
        before = health(host, port)
        latencies, errors = [], []
        start = time.perf_counter()
        stop_at = start + args.seconds
        threads = [threading.Thread(target=client, args=(host, port, texts, k * 997, stop_at, latencies, errors))
                   for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        after = health(host, port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ms = sorted(x * 1000 for x in latencies)
    batches = after["batches"] - before["batches"]
    return {"server_flags": " ".join(extra) or "(defaults)", "clients": args.clients, "seconds": round(wall, 1),
            "requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1) if ms else None,
            "max_ms": round(ms[-1], 1) if ms else None,
            "mean_texts_per_batch": round((after["texts"] - before["texts"]) / batches, 2) if batches else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    texts = load_texts(args)
    configs = [[]] + ([["--max-batch", "1"]] if args.compare else [])
    results = [run_load(args, texts, extra) for extra in configs]
    lines = [f"# ulmfit serve load test: {args.clients} clients x {args.seconds:g} s, one text per request",
             f"# run dir: {args.run_dir}  int8: {args.int8}  server threads: {args.threads or 'torch default'}",
             f"# texts: {len(texts)} from {args.dataset or args.data}",
             f"# CPU: {cpu_name()}", f"# flags: {' '.join(cpu_flags())}",
             f"{'server':<18} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'texts/batch':>12} {'errors':>7}"]
    for r in results:
        lines.append(f"{r['server_flags']:<18} {r['requests_per_s']:>7} {r['p50_ms']:>8} {r['p95_ms']:>8} "
                     f"{r['max_ms']:>8} {r['mean_texts_per_batch']:>12} {r['errors']:>7}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n" + json.dumps(results) + "\n")
    if args.json:
        print(json.dumps(results[0]))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
