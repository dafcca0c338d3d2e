"""Tests for ulmfit/apps/serve.py: the HTTP JSON API against a real server on 127.0.0.1, micro-batching, the CLI."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_pipeline import runs  # noqa: F401  (the tiny run dirs, once per module)
from ulmfit.predict import TextClassifier
from ulmfit.data.readers import read_labelled_file
from ulmfit.apps.serve import MicroBatcher, ServeConfig, Service, close_server, make_server
from ulmfit.text.tokenizer import apply_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(runs):  # noqa: F811
    """The tiny classifier served on a free port of 127.0.0.1, with small limits to test them against."""
    config = ServeConfig(port=0, max_texts=8, max_chars=500, max_body_bytes=8192, max_explain=2, explain_steps=8,
                         threads=1)
    srv = make_server(runs / "cls", config)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    close_server(srv)


def request(server, method: str, path: str, body=None, headers=None) -> tuple[int, dict | str]:
    """One request on a new connection: (status, the decoded JSON or the text)."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    raw = response.read().decode()
    conn.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, json.loads(raw) if is_json else raw


@pytest.fixture(scope="module")
def texts(runs):  # noqa: F811
    return read_labelled_file(runs / "test.csv")[0][:8]


class TestApi:
    def test_health_names_the_labels_and_limits(self, server, runs):  # noqa: F811
        status, body = request(server, "GET", "/health")
        assert status == 200 and body["status"] == "ok"
        assert body["labels"] == json.loads((runs / "cls" / "config.json").read_text())["labels"]
        assert body["limits"]["max_texts"] == 8

    def test_predictions_are_the_python_api_probabilities_in_request_order(self, server, runs, texts):  # noqa: F811
        """The served probabilities are TextClassifier.predict_proba's (with the run's baseline), to the 6 decimals
        the API rounds to, one per text, in the order sent."""
        status, body = request(server, "POST", "/predict", {"texts": texts})
        assert status == 200 and len(body["predictions"]) == len(texts)
        model = TextClassifier.from_pretrained(runs / "cls", device="cpu")
        expected = model.predict_proba(texts)
        served = np.array([[p["probabilities"][n] for n in model.label_names] for p in body["predictions"]])
        np.testing.assert_allclose(served, expected, atol=1e-6)
        assert [p["label"] for p in body["predictions"]] == [model.label_names[i] for i in expected.argmax(1)]

    def test_explain_gives_one_score_per_token_for_the_served_label(self, server, texts):
        status, body = request(server, "POST", "/predict", {"texts": texts[:2], "explain": True})
        assert status == 200 and len(body["attributions"]) == 2
        for prediction, attribution, text in zip(body["predictions"], body["attributions"], texts):
            assert attribution["label"] == prediction["label"]
            assert len(attribution["tokens"]) == len(attribution["scores"]) > 0
            # the pieces spell the text as the model reads it (with fastai's xxmaj/xxup markers)
            assert "".join(attribution["tokens"]).split() == apply_rules(text).split()

    def test_the_page_is_served_at_the_root(self, server):
        status, body = request(server, "GET", "/")
        assert status == 200 and "<textarea" in body and 'fetch("predict"' in body

    @pytest.mark.parametrize("body, status, said", [
        (b"{not json", 400, "not valid JSON"),
        ([1, 2], 400, "expected a JSON object"),
        ({"text": "hello"}, 400, "expected a JSON object"),
        ({"texts": "hello"}, 400, "non-empty list of strings"),
        ({"texts": []}, 400, "non-empty list of strings"),
        ({"texts": ["fine", 3]}, 400, r"texts\[1\] is a int"),
        ({"texts": ["fine", "  "]}, 400, r"texts\[1\] is empty"),
        ({"texts": ["fine"], "explain": "yes"}, 400, "must be true or false"),
        ({"texts": ["fine"], "limit": 3}, 400, r"unknown field\(s\) \['limit'\]"),
        ({"texts": ["fine"] * 9}, 413, "9 texts in one request; the limit is 8"),
        ({"texts": ["word " * 101]}, 413, "505 characters; the limit is 500"),
        ({"texts": ["fine"] * 3, "explain": True}, 413, "explain is limited to 2 texts"),
        (b'{"texts": ["' + b"x" * 9000 + b'"]}', 413, "the limit is 8,192"),
    ])
    def test_bad_requests_get_a_4xx_with_the_reason(self, server, body, status, said):
        got, answer = request(server, "POST", "/predict", body)
        assert got == status
        assert re.search(said, answer["error"])

    @pytest.mark.parametrize("method, path, status", [("GET", "/nothing", 404), ("POST", "/elsewhere", 404),
                                                      ("GET", "/predict", 405), ("POST", "/health", 405)])
    def test_other_paths_and_methods_are_refused(self, server, method, path, status):
        got, answer = request(server, method, path, {"texts": ["x"]} if method == "POST" else None)
        assert got == status and answer["error"]

    def test_a_body_without_content_length_gets_411(self, server):
        with socket.create_connection(server.server_address[:2], timeout=10) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):                  # to the server's close: the whole answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 411") and b"Content-Length header is required" in answer

    def test_the_server_keeps_serving_after_errors(self, server, texts):
        request(server, "POST", "/predict", b"{broken")
        status, body = request(server, "POST", "/predict", {"texts": texts[:1]})
        assert status == 200 and len(body["predictions"]) == 1


def test_int8_serving_gives_the_int8_model_probabilities_and_fp32_attributions(runs, texts):  # noqa: F811
    """--int8 serves from_pretrained(int8=True)'s probabilities; attributions still come (from the fp32 copy)."""
    service = Service(runs / "cls", ServeConfig(int8=True, explain_steps=4, threads=1))
    try:
        body = service.predict(texts[:3], explain=True)
    finally:
        service.close()
    expected = TextClassifier.from_pretrained(runs / "cls", int8=True).predict_proba(texts[:3])
    served = np.array([list(p["probabilities"].values()) for p in body["predictions"]])
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert service.health()["int8"] is True and len(body["attributions"]) == 3


class TestMicroBatching:
    def test_concurrent_requests_share_one_call(self):
        """Ten requests queued within the wait window are scored in one predict_proba call, each getting its own
        rows back."""
        calls = []
        started = threading.Event()

        def predict_proba(texts):
            calls.append(list(texts))
            started.wait(5)            # the first call holds the worker until every request is queued
            return np.array([[float(t), 1 - float(t)] for t in texts])

        batcher = MicroBatcher(predict_proba, max_batch=64, max_wait_ms=0)
        first = batcher.submit(["0.5"])
        while not calls:
            time.sleep(0.001)
        futures = [batcher.submit([f"0.{i}", f"0.0{i}"]) for i in range(1, 10)]
        started.set()
        assert first.result(5).tolist() == [[0.5, 0.5]]
        for i, future in enumerate(futures, 1):
            np.testing.assert_allclose(future.result(5)[:, 0], [float(f"0.{i}"), float(f"0.0{i}")])
        assert len(calls) == 2 and len(calls[1]) == 18        # the nine waiting requests: one call
        assert batcher.stats == {"requests": 10, "texts": 19, "batches": 2}
        batcher.close()

    def test_a_batch_is_capped_at_max_batch_texts(self):
        calls, gate = [], threading.Event()

        def predict_proba(texts):
            calls.append(len(texts))
            gate.wait(5)
            return np.zeros((len(texts), 2))

        batcher = MicroBatcher(predict_proba, max_batch=4, max_wait_ms=0)
        futures = [batcher.submit(["t"])]
        while not calls:
            time.sleep(0.001)
        futures += [batcher.submit(["t"]) for _ in range(9)]
        gate.set()
        for future in futures:
            future.result(5)
        assert calls == [1, 4, 4, 1]
        batcher.close()

    def test_an_error_reaches_every_request_of_the_batch_and_the_worker_lives_on(self):
        def predict_proba(texts):
            if "bad" in texts:
                raise ValueError("no such token")
            return np.zeros((len(texts), 2))

        batcher = MicroBatcher(predict_proba, max_wait_ms=0)
        with pytest.raises(ValueError, match="no such token"):
            batcher.submit(["bad"]).result(5)
        assert batcher.submit(["good"]).result(5).shape == (1, 2)
        batcher.close()


def test_the_cli_serves_until_interrupted(runs):  # noqa: F811
    """`ulmfit serve DIR --port 0` prints its URL, answers, and on Ctrl-C exits 0 with a JSON summary.

    The server starts with SIGINT at its default: under a test run started in the background (`nohup make test &`)
    it inherits SIGINT ignored, and Python, as a shell's background job should, then ignores Ctrl-C."""
    proc = subprocess.Popen([sys.executable, "-m", "ulmfit", "serve", str(runs / "cls"), "--port", "0",
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stderr.readline()
        assert "serving" in line, line
        host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/predict", body=json.dumps({"texts": ["alpha beta"]}))
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)          # faulthandler prints every thread's stack: say where it hung
            pytest.fail("the server did not stop within 60 s of Ctrl-C; its threads:\n" + proc.communicate()[1])
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["requests"] == 1 and summary["url"].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_eight_clients_for_twenty_seconds_get_no_error(runs):  # noqa: F811
    """The bounded load test: benchmarks/serve_load.py's 8 keep-alive clients for 20 s against the tiny
    classifier; every request answers 200, and the script reports requests/s and p50/p95 latency."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), str(runs / "cls"),
                           "--data", str(runs / "test.csv"), "--clients", "8", "--seconds", "20", "--threads", "1",
                           "--json"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert result["errors"] == 0 and result["requests"] > 8
    assert 0 < result["p50_ms"] <= result["p95_ms"]
