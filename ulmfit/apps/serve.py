"""apps/ layer (a trained classifier -> a service): `ulmfit serve DIR`, an HTTP JSON API and a web page.

    POST /predict   {"texts": ["...", ...], "explain": false}
                    -> {"predictions": [{"label": ..., "probabilities": {label: p}}, ...],
                        "attributions": [{"label", "tokens", "scores", "delta"}, ...]   (only with "explain": true)}
    GET  /health    -> {"status": "ok", "labels": [...], "int8": ..., "requests": n, "batches": n, ...}
    GET  /          -> a page: type a text, see the label, the probabilities and the tokens coloured by attribution

Micro-batching: each request's texts go into one queue; a single worker thread takes what is waiting (up to
`max_batch` texts, waiting at most `max_wait_ms` for company after the first arrives) and scores it in one
`predict_proba` call, whose length bucketing and token budget (classifier.py) then do the rest. Concurrent
single-text requests thus share forward passes, which is where a CPU's throughput comes from (the LSTM kernels
are far more efficient on (B, T, E) than on (1, T, E)); one worker also keeps torch's threads from being
oversubscribed by request threads.

Attributions are integrated gradients (explain.py) of the network's logit for the label served, on an fp32 copy
of the classifier (int8 weights have no gradients), one request at a time behind a lock. IG costs `steps + 2`
forward and backward passes per text, so "explain" accepts at most `max_explain` texts per request.

Limits answer with a 4xx status and {"error": "..."}: 400 for a body that is not JSON or not of the shape above,
413 for a body over `max_body_bytes`, more than `max_texts` texts, a text over `max_chars` characters or too
many texts to explain, 404/405 for other paths and methods. The server is the standard library's
ThreadingHTTPServer: nothing to install, one thread per connection, enough for a model that one CPU worker
serves anyway; behind a public address, put it behind a reverse proxy (TLS, authentication).
"""
from __future__ import annotations

import json
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from ..analysis.metrics import prediction_dicts
from ..errors import UlmfitError
from ..validation import bounded_json, check_serve_config, invalid_text


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000                 # 0: any free port (the URL is printed)
    int8: bool = False               # predictions with int8 LSTMs and head (quantize.py); attributions stay fp32
    baseline: bool = True            # average in the run's TF-IDF + LR baseline where the run chose it
    max_batch: int = 64              # texts per micro-batch
    max_wait_ms: float = 5.0         # how long the first text of a micro-batch waits for others
    max_texts: int = 64              # texts per request
    max_chars: int = 10_000          # characters per text
    max_body_bytes: int = 1 << 20    # request body
    max_explain: int = 4             # texts per request with "explain": true
    explain_steps: int = 32          # integration steps (explain.py; 48 in `ulmfit explain`, fewer for latency)
    threads: int = 0                 # torch threads for the worker; 0 keeps torch's default


class ClientError(Exception):
    """A bad request: its HTTP status and the message the client gets."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class MicroBatcher:
    """One worker thread that scores queued texts in shared `predict_proba` calls.

    `submit(texts)` returns a Future of the (len(texts), C) probabilities; `stats` counts requests and batches."""

    def __init__(self, predict_proba, max_batch: int = 64, max_wait_ms: float = 5.0):
        self.predict_proba, self.max_batch, self.max_wait = predict_proba, max_batch, max_wait_ms / 1000
        self.queue: queue.Queue = queue.Queue()
        self.stats = {"requests": 0, "texts": 0, "batches": 0}
        self._worker = threading.Thread(target=self._run, name="ulmfit-microbatcher", daemon=True)
        self._worker.start()

    def submit(self, texts: list[str]) -> Future:
        future: Future = Future()
        self.queue.put((texts, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            jobs, n_texts = [first], len(first[0])
            deadline = time.monotonic() + self.max_wait
            while n_texts < self.max_batch:
                try:
                    job = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:                       # close() while gathering: finish this batch, then stop
                    self.queue.put(None)
                    break
                jobs.append(job)
                n_texts += len(job[0])
            self._score(jobs)

    def _score(self, jobs) -> None:
        try:
            probs = self.predict_proba([t for texts, _ in jobs for t in texts])
        except Exception as e:                        # every waiting request gets the error, the worker lives on
            for _, future in jobs:
                future.set_exception(e)
            return
        self.stats["requests"] += len(jobs)
        self.stats["texts"] += len(probs)
        self.stats["batches"] += 1
        start = 0
        for texts, future in jobs:
            future.set_result(probs[start:start + len(texts)])
            start += len(texts)


class Service:
    """The model side of the server: validation of a request's JSON, micro-batched predictions, attributions."""

    def __init__(self, run_dir: Path, config: ServeConfig):
        import torch

        from ..predict import load_classifier
        if config.threads:
            torch.set_num_threads(config.threads)
        self.config, self.run_dir = config, Path(run_dir)
        self.model = load_classifier(self.run_dir, device="cpu", baseline=config.baseline, int8=config.int8)
        self.explainer = load_classifier(self.run_dir, device="cpu", baseline=False)   # fp32: IG needs gradients
        self.labels = list(self.model.label_names)
        self.batcher = MicroBatcher(self.model.predict_proba, config.max_batch, config.max_wait_ms)
        self._explain_lock = threading.Lock()
        self.started = time.time()

    def health(self) -> dict:
        return {"status": "ok", "model": str(self.run_dir), "labels": self.labels, "int8": self.config.int8,
                "baseline": self.model.baseline is not None, "delivered": self.model.delivered, "uptime_s": round(time.time() - self.started, 1),
                **self.batcher.stats, "limits": {k: getattr(self.config, k) for k in
                                                 ("max_texts", "max_chars", "max_body_bytes", "max_explain")}}

    def parse(self, body: bytes) -> tuple[list[str], bool]:
        """The texts and the explain flag of a /predict body, or a ClientError saying what is wrong with it."""
        try:                              # bounded: depth and integer digits (a hostile body kills json.loads)
            request = bounded_json(body.decode("utf-8"))
        except ValueError as e:           # UnicodeDecodeError and JSONDecodeError among them
            raise ClientError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {e}") from None
        if not isinstance(request, dict) or "texts" not in request:
            raise ClientError(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"texts": ["...", ...]}')
        texts, explain = request["texts"], request.get("explain", False)
        unknown = sorted(set(request) - {"texts", "explain"})
        if unknown:
            raise ClientError(HTTPStatus.BAD_REQUEST, f"unknown field(s) {unknown}; expected texts and explain")
        if not isinstance(texts, list) or not texts:
            raise ClientError(HTTPStatus.BAD_REQUEST, '"texts" must be a non-empty list of strings')
        if not isinstance(explain, bool):
            raise ClientError(HTTPStatus.BAD_REQUEST, '"explain" must be true or false')
        c = self.config
        if len(texts) > c.max_texts:
            raise ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"{len(texts)} texts in one request; the limit is {c.max_texts}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ClientError(HTTPStatus.BAD_REQUEST, f"texts[{i}] is a {type(text).__name__}, not a string")
            if not text.strip():
                raise ClientError(HTTPStatus.BAD_REQUEST, f"texts[{i}] is empty")
            problem = invalid_text(text)      # the CLI's rule for argv and files (validation.py)
            if problem:
                raise ClientError(HTTPStatus.BAD_REQUEST, f"texts[{i}]: {problem}")
            if len(text) > c.max_chars:
                raise ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                  f"texts[{i}] has {len(text):,} characters; the limit is {c.max_chars:,}")
        if explain and len(texts) > c.max_explain:
            raise ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"explain is limited to {c.max_explain} texts per request; got {len(texts)}")
        return texts, explain

    def predict(self, texts: list[str], explain: bool = False) -> dict:
        probs = self.batcher.submit(texts).result()
        # which model answered: ULMFiT alone, or the run's mix with TF-IDF + LR chosen on validation (issue 27)
        out = {"model": self.model.delivered, "predictions": prediction_dicts(self.labels, probs, digits=6)}
        if explain:
            from ..analysis.explain import attributions
            with self._explain_lock:
                # for the label served (with the baseline averaged in, it can differ from the network's own)
                expls = [attributions(self.explainer, t, target=p["label"], steps=self.config.explain_steps)
                         for t, p in zip(texts, out["predictions"])]
            # the attributions are the LSTM's own, even where the probabilities mix in TF-IDF + LR
            out["attributions_of"] = "ULMFiT (integrated gradients through the LSTM)"
            out["attributions"] = [{"label": e.label, "tokens": e.tokens, "scores": [round(s, 5) for s in e.scores],
                                    "delta": round(e.delta, 5)} for e in expls]
        return out

    def close(self) -> None:
        self.batcher.close()


def page() -> bytes:
    """The web page at / (ulmfit/apps/serve_page.html): plain HTML, CSS and JavaScript, no external resource."""
    return resources.files("ulmfit.apps").joinpath("serve_page.html").read_bytes()


class Handler(BaseHTTPRequestHandler):
    service: Service                     # set on the subclass that make_server builds
    server_version = "ulmfit-serve"
    protocol_version = "HTTP/1.1"        # keep-alive: a client's requests reuse one connection
    timeout = 60                         # seconds a connection may sit silent (or send a body slowly) before closing

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8")
        elif path == "/health":
            self._json(HTTPStatus.OK, self.service.health())
        elif path == "/predict":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "/predict takes a POST with a JSON body"})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {path}; try / , /health or POST /predict"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path != "/predict":
            self._json(HTTPStatus.NOT_FOUND if path not in ("/", "/health") else HTTPStatus.METHOD_NOT_ALLOWED,
                       {"error": f"POST goes to /predict, not {path}"})
            return
        try:
            texts, explain = self.service.parse(self._body())
            self._json(HTTPStatus.OK, self.service.predict(texts, explain))
        except ClientError as e:
            self._json(e.status, {"error": str(e)})
        except UlmfitError as e:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
        except Exception as e:            # never a connection closed without an answer
            self.close_connection = True
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {str(e)[:200]}"})

    def _not_allowed(self):
        self.close_connection = True      # an unread body must not be taken for the next request
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not served: GET / and /health, "
                                                            "POST /predict"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a bad request line, too many headers, an unknown method) as JSON too."""
        self.close_connection = True
        try:
            status = HTTPStatus(code)
            self._json(status, {"error": message or status.phrase})
        except (BrokenPipeError, ConnectionResetError, ValueError):
            pass

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise ClientError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        try:
            n = int(length)
        except ValueError:
            raise ClientError(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number") from None
        if n < 0:                                 # rfile.read(-1) would wait for the client to close
            self.close_connection = True
            raise ClientError(HTTPStatus.BAD_REQUEST, f"Content-Length {n} is negative")
        if n > self.service.config.max_body_bytes:
            self.close_connection = True          # the unread body must not be taken for the next request
            raise ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"the body has {n:,} bytes; the limit is {self.service.config.max_body_bytes:,}")
        return self.rfile.read(n)

    def _json(self, status: HTTPStatus, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):   # the client left before its answer: nothing to tell it
            self.close_connection = True

    def log_message(self, format, *args):      # one line per request would drown the terminal under load
        pass


def make_server(run_dir: Path, config: ServeConfig | None = None) -> ThreadingHTTPServer:
    """A ready, not yet serving, server for `run_dir` (a classify run dir); `.service` holds the model side.
    `server.serve_forever()` serves; `server.shutdown()` (from another thread) and `close_server` stop it."""
    config = config or ServeConfig()
    check_serve_config(config)            # before the model loads: a bad flag is one line, not a later traceback
    service = Service(run_dir, config)
    handler = type("BoundHandler", (Handler,), {"service": service})
    try:
        server = ThreadingHTTPServer((config.host, config.port), handler)
    except OSError as e:
        service.close()
        raise UlmfitError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
    server.daemon_threads = True
    server.service = service
    return server


def close_server(server: ThreadingHTTPServer) -> None:
    server.server_close()
    server.service.close()


def url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve(run_dir: Path, config: ServeConfig | None = None) -> dict:
    """Serve until Ctrl-C or SIGTERM; return what was served."""
    server = make_server(run_dir, config)
    print(f"ulmfit: serving {run_dir} on {url(server)}  (POST /predict, GET /health; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close_server(server)
    return {"served": str(run_dir), "url": url(server), **server.service.batcher.stats,
            "config": asdict(server.service.config)}
