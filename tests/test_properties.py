"""Property tests (issue 30) of the input boundaries: the file readers, the `--set` parser, the run-dir loader and
the HTTP API, fed random bytes, random Unicode (surrogates and controls included), random JSON and random config
values. Each asserts "a one-line error or a valid result, no traceback, inputs unchanged".

Examples per test: the Hypothesis profile of tests/conftest.py (a few dozen by default; HYPOTHESIS_PROFILE=ci-long
in CI's long pass).
"""
import dataclasses
import hashlib
import http.client
import json
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st

from test_cli_errors import runs  # noqa: F401  (the tiny run dirs)
from ulmfit import checkpoint as ckpt
from ulmfit.config import SECTIONS, apply_overrides, preset, validate
from ulmfit.errors import UlmfitError
from ulmfit.data.readers import read_for_prediction, read_labelled_file
from ulmfit.apps.serve import ServeConfig, close_server, make_server
from ulmfit.validation import invalid_text

# every code point, lone surrogates and controls included
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                    max_leaves=12)


def one_line(error: Exception) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message, message


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the readers ---------------------------------------------------------------------------------------------
def _read(path: Path):
    """read_labelled_file, then read_for_prediction: each gives valid texts or a one-line UlmfitError."""
    for read in (lambda: read_labelled_file(path, "text", "label")[0], lambda: read_for_prediction(path, "text")[0]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # a .csv that looks tab-separated: a warning, then read
                texts = read()
        except UlmfitError as e:
            one_line(e)
            continue
        assert texts and all(isinstance(t, str) and t.strip() and invalid_text(t) is None for t in texts)


@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]))
def test_readers_on_random_bytes(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(data)
        _read(path)
        assert path.read_bytes() == data


@given(rows=st.lists(st.fixed_dictionaries({"text": ANY_TEXT, "label": ANY_TEXT}, optional={"x": JSON}),
                     min_size=1, max_size=5))
def test_readers_on_random_jsonl(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))     # ASCII: surrogates travel as \ud800
        before = _digest(path)
        _read(path)
        assert _digest(path) == before


@given(header=st.lists(st.sampled_from(["text", "label", "x", ""]), min_size=1, max_size=4),
       cells=st.lists(st.lists(ANY_TEXT.filter(lambda t: invalid_text(t) is None), min_size=1, max_size=4),
                      min_size=1, max_size=4))
def test_readers_on_random_csv(header, cells):
    import csv
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, *cells])
        before = _digest(path)
        _read(path)
        assert _digest(path) == before


# ---- the --set parser ---------------------------------------------------------------------------------------
FIELDS = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
VALUES = st.one_of(ANY_TEXT, st.integers().map(str), st.floats().map(repr), st.sampled_from(
    ["0", "-1", "1", "0.5", "1e308", "2e19", "nan", "-inf", "true", "no", "gradual", "bf16", " 3 "]))


@given(settings_=st.lists(st.tuples(st.sampled_from(FIELDS) | ANY_TEXT, VALUES), max_size=4),
       stage=st.sampled_from(["pretrain", "finetune", "classify"]))
def test_set_parser(settings_, stage):
    base = preset("tiny", stage)
    snapshot = base.to_dict()
    try:
        config = apply_overrides(base, [f"{k}={v}" for k, v in settings_])
    except UlmfitError as e:
        one_line(e)
    else:
        validate(config)
        t = config.train                  # what torch is given from these values must be accepted by torch
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=t.lr, betas=(t.adam_beta1, t.adam_beta2),
                          weight_decay=t.weight_decay)
        torch.Generator().manual_seed(config.run.seed)
    assert base.to_dict() == snapshot      # the preset itself is never changed


# ---- the run-dir loader ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_copy(runs, tmp_path_factory):  # noqa: F811
    dst = tmp_path_factory.mktemp("props") / "cls"
    shutil.copytree(runs.cls, dst, ignore=shutil.ignore_patterns("data"))
    return dst


def _load(run: Path) -> None:
    from ulmfit.predict import TextClassifier
    try:
        model = TextClassifier.from_pretrained(run, device="cpu", baseline=False)
        model.predict_proba(["a good film"])
    except UlmfitError as e:
        one_line(e)


@given(where=st.sampled_from([(), ("stage",), ("labels",), ("config",), ("config", "train"), ("config", "model"),
                              *[("config", s, f.name) for s, cls in SECTIONS.items()
                                for f in dataclasses.fields(cls)]]),
       value=JSON)
def test_run_dir_loader_on_a_tampered_config(run_copy, where, value):
    path = run_copy / ckpt.CONFIG_FILE
    original = path.read_bytes()
    meta = json.loads(original)
    if not where:
        meta = value
    else:
        node = meta
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
    try:
        path.write_text(json.dumps(meta))
        weights = _digest(run_copy / ckpt.WEIGHTS_FILE)
        _load(run_copy)
        assert _digest(run_copy / ckpt.WEIGHTS_FILE) == weights
    finally:
        path.write_bytes(original)


@given(data=st.binary(max_size=200))
def test_run_dir_loader_on_random_bytes(run_copy, data):
    path = run_copy / ckpt.CONFIG_FILE
    original = path.read_bytes()
    try:
        path.write_bytes(data)
        _load(run_copy)
    finally:
        path.write_bytes(original)


# ---- the HTTP API ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(runs):  # noqa: F811
    srv = make_server(runs.cls, ServeConfig(port=0, threads=1, max_texts=4, max_chars=200, max_explain=1,
                                            explain_steps=2))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    close_server(srv)


def _post(server, body: bytes, method: str = "POST", path: str = "/predict") -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        if response.status == 200 and response.getheader("Content-Type", "").startswith("text/html"):
            return 200, {"page": raw}                    # GET /
        assert response.getheader("Content-Type") == "application/json", (response.status, raw[:200])
        return response.status, json.loads(raw)
    finally:
        conn.close()


def _check_answer(status: int, answer: dict) -> None:
    if status == 200:                     # predictions, or GET's page or /health
        for p in answer.get("predictions", []):
            assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
    else:
        assert 400 <= status < 500 and isinstance(answer["error"], str) and answer["error"], (status, answer)


@given(body=st.binary(max_size=200))
def test_http_api_on_random_bytes(server, body):
    _check_answer(*_post(server, body))


@given(request=st.one_of(JSON, st.fixed_dictionaries({"texts": st.lists(ANY_TEXT, max_size=5)},
                                                     optional={"explain": JSON})))
def test_http_api_on_random_json(server, request):
    _check_answer(*_post(server, json.dumps(request).encode()))


@given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]),
       path=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20).map(lambda p: "/" + p))
def test_http_api_on_random_methods_and_paths(server, method, path):
    _check_answer(*_post(server, b'{"texts": ["a good film"]}', method, path))
