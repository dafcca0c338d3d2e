"""The published-model registry and its download path (model_zoo.py), against a local http.server.

The tarball is built here in fastai's model-zoo layout (`wt103-fwd/lstm_fwd.pth` + `wt103-fwd/itos_wt103.pkl`,
what fastai's `untar_data(URLs.WT103_FWD)` unpacks), at the tiny preset's size.
"""
import dataclasses
import hashlib

import pytest
import torch

from tests.test_datasets import _Handler, cache, serving  # noqa: F401 (cache: a fixture)
from tests.test_datasets import _tar as tarball
from tests.test_fastai_interop import as_bytes, fastai_state, vocab_bytes
from ulmfit import checkpoint as ckpt
from ulmfit.pretrained import model_zoo as Z
from ulmfit.errors import UlmfitError


STATE = fastai_state()
GOOD = tarball({"wt103-fwd/lstm_fwd.pth": as_bytes(STATE), "wt103-fwd/itos_wt103.pkl": vocab_bytes()})
NO_VOCAB = tarball({"wt103-fwd/lstm_fwd.pth": as_bytes(STATE)})


class _ZooHandler(_Handler):
    routes: dict = {}
    hits: list = []


@pytest.fixture(scope="module")
def server():
    _ZooHandler.routes = {"wt103-fwd.tgz": GOOD, "bad.tgz": NO_VOCAB}
    with serving(_ZooHandler) as url:
        yield url


def spec(url: str, archive: bytes = GOOD) -> Z.PretrainedSpec:
    """wt103-fwd's entry pointed at the local server, pinned as fastdownload pins: size + md5 of the first MiB."""
    real = Z.PRETRAINED["wt103-fwd"]
    remote = dataclasses.replace(real.archive, urls=(url,), size=len(archive),
                                 head_md5=hashlib.md5(archive[:1 << 20]).hexdigest())
    return dataclasses.replace(real, archive=remote, preset="tiny")


def files_in(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_registry_pins_what_fastdownload_publishes():
    for name, size in (("wt103-fwd", 105067061), ("wt103-bwd", 105205312)):
        s = Z.PRETRAINED[name]
        assert s.archive.size == size and s.archive.sha256 is None and len(s.archive.head_md5) == 32
        assert s.archive.urls[0] == f"https://s3.amazonaws.com/fast-ai-modelzoo/{name}.tgz"
        assert s.backwards == (name == "wt103-bwd") and s.preset == "paper"


def test_download_writes_a_run_dir(server, cache, tmp_path):
    result = Z.download_pretrained(spec(f"{server}/ok/wt103-fwd.tgz"), tmp_path / "lm")
    _, config, state, _ = ckpt.load_run(tmp_path / "lm")
    assert torch.equal(state["decoder.bias"], STATE["1.decoder.bias"]) and config.train.backwards is False
    assert files_in(cache) == ["wt103-fwd", "wt103-fwd.tgz"]
    assert result["archive_sha256"] == hashlib.sha256(GOOD).hexdigest()


def test_second_download_uses_the_cache(server, cache, tmp_path):
    s = spec(f"{server}/ok/wt103-fwd.tgz")
    Z.download_pretrained(s, tmp_path / "a")
    before = len(_ZooHandler.hits)
    Z.download_pretrained(s, tmp_path / "b")
    assert len(_ZooHandler.hits) == before


def test_truncated_body_leaves_nothing(server, cache, tmp_path):
    with pytest.raises(UlmfitError, match="truncated|IncompleteRead") as e:
        Z.download_pretrained(spec(f"{server}/truncated/wt103-fwd.tgz"), tmp_path / "lm")
    assert "\n" not in str(e.value) and files_in(cache) == [] and not (tmp_path / "lm").exists()


def test_wrong_structure_leaves_nothing(server, cache, tmp_path):
    with pytest.raises(UlmfitError, match=r"unexpected contents: .*exactly one \.pth and one \.pkl"):
        Z.download_pretrained(spec(f"{server}/ok/bad.tgz", NO_VOCAB), tmp_path / "lm")
    assert files_in(cache) == [] and not (tmp_path / "lm").exists()


def test_first_mib_md5_is_checked(server, cache, tmp_path):
    s = spec(f"{server}/ok/wt103-fwd.tgz")
    s = dataclasses.replace(s, archive=dataclasses.replace(s.archive, head_md5="0" * 32))
    with pytest.raises(UlmfitError, match="md5 of the first MiB"):
        Z.download_pretrained(s, tmp_path / "lm")
    assert files_in(cache) == []


def test_user_sha256_is_enforced(server, cache, tmp_path):
    with pytest.raises(UlmfitError, match="sha256 mismatch"):
        Z.download_pretrained(spec(f"{server}/ok/wt103-fwd.tgz"), tmp_path / "lm", sha256="0" * 64)
    Z.download_pretrained(spec(f"{server}/ok/wt103-fwd.tgz"), tmp_path / "lm",
                          sha256=hashlib.sha256(GOOD).hexdigest())


def test_404_says_what_to_do(server, cache, tmp_path):
    with pytest.raises(UlmfitError) as e:
        Z.download_pretrained(spec(f"{server}/missing.tgz"), tmp_path / "lm")
    msg = str(e.value)
    assert "HTTP 404" in msg and "ULMFIT_MIRROR" in msg and "ulmfit lm import" in msg and "pretrain" in msg
    assert "\n" not in msg and files_in(cache) == []


def test_offline_is_one_line(cache, tmp_path):
    with pytest.raises(UlmfitError) as e:
        Z.download_pretrained(spec("http://127.0.0.1:9/wt103-fwd.tgz"), tmp_path / "lm")
    assert "no connection" in str(e.value) and "\n" not in str(e.value)


def test_mirror_folder_with_the_two_files(cache, tmp_path, monkeypatch):
    folder = tmp_path / "mirror" / "wt103-fwd"
    folder.mkdir(parents=True)
    (folder / "lstm_fwd.pth").write_bytes(as_bytes(STATE))
    (folder / "itos_wt103.pkl").write_bytes(vocab_bytes())
    monkeypatch.setenv("ULMFIT_MIRROR", str(tmp_path / "mirror"))
    Z.download_pretrained(spec("http://127.0.0.1:9/never-used.tgz"), tmp_path / "lm")
    assert (tmp_path / "lm" / "model.pt").is_file() and files_in(cache) == []


def test_cli_bad_archive_exit_2_nothing_cached(server, cache, tmp_path, monkeypatch, capsys):
    from ulmfit.cli import main
    monkeypatch.setitem(Z.PRETRAINED, "wt103-fwd", spec(f"{server}/ok/bad.tgz", NO_VOCAB))
    assert main(["lm", "download", "wt103-fwd", "--out", str(tmp_path / "lm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ulmfit: error: cannot download wt103-fwd")
    assert files_in(cache) == [] and not (tmp_path / "lm").exists()


def test_registry_name_as_pretrained_is_imported_once(server, cache, monkeypatch):
    """`--pretrained wt103-fwd` resolves to a run dir imported into the cache on first use, reused after."""
    monkeypatch.setitem(Z.PRETRAINED, "wt103-fwd", spec(f"{server}/ok/wt103-fwd.tgz"))
    first = Z.resolve_pretrained("wt103-fwd")
    assert first == cache / "wt103-fwd" / "run" and (first / "model.pt").is_file()
    stamp = (first / "model.pt").stat().st_mtime_ns
    assert Z.resolve_pretrained("wt103-fwd") == first and (first / "model.pt").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (cache / "wt103-fwd").iterdir()) == ["run", "wt103-fwd.tgz"]
