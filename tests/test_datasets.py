"""Tests for ulmfit/data/download.py: registry, download (local http.server), cache, mirror, standard splits."""
import contextlib
import dataclasses
import hashlib
import io
import os
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ulmfit.data import download as D
from ulmfit.data import splits as S
from ulmfit.data import formats as F
from ulmfit.errors import UlmfitError

MIRROR = Path(os.environ.get("ULMFIT_MIRROR") or Path(__file__).parents[2] / "shared" / "data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "wikitext2").is_dir(), reason=f"no data mirror at {MIRROR}")

WIKI = {"train": " \n = Alpha = \n \n Alpha is a 1 @,@ 000 km @-@ long river . \n = = History = = \n"
                 " It flows . \n = Beta = \n Beta is small . \n",
        "valid": " = Gamma = \n Gamma . \n", "test": " = Delta = \n Delta . \n"}


def _wikitext_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split, text in WIKI.items():
            z.writestr(f"wikitext-2/wiki.{split}.tokens", text)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}          # path -> bytes; "/truncated/..." advertises more bytes than it sends
    hits: list = []

    def do_GET(self):
        self.hits.append(self.path)
        body = self.routes.get(self.path.split("/", 2)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/truncated/"):
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """A real HTTP server on 127.0.0.1 answering with `handler`'s routes; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server():
    archive = _wikitext_zip()
    _Handler.routes = {"wikitext-2-v1.zip": archive}
    with serving(_Handler) as url:
        yield url, archive


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ULMFIT_MIRROR", raising=False)
    return tmp_path / "cache"


def toy_spec(urls, archive: bytes, sha256=None, members=()) -> D.DatasetSpec:
    sha = hashlib.sha256(archive).hexdigest() if sha256 is None else sha256
    remote = D.Remote("wikitext-2-v1.zip", tuple(urls), sha or None, len(archive), "test", members)
    return dataclasses.replace(D.DATASETS["wikitext2"], name="toywiki", upstream=(remote,), mirror=())


def _files(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


class TestRegistry:
    def test_names(self):
        """The registry holds the seven datasets of issue 2, wikipedia_2015 and the four sets of issue 26."""
        assert set(D.DATASETS) == {"wikitext103", "wikitext2", "ptb", "imdb", "imdb_sample", "clickbait",
                                   "rt_polarity", "wikipedia_2015", "tweeteval_offensive", "tweeteval_irony",
                                   "20newsgroups", "subj"}

    @pytest.mark.parametrize("name", sorted(D.DATASETS))
    def test_entries_complete(self, name):
        """Every entry has URLs, a sha256 (or member hashes) with its source, a licence and a citation."""
        spec = D.DATASETS[name]
        assert spec.licence and spec.citation and spec.kind in ("lm", "labelled")
        for remote in spec.upstream + spec.fallback:
            assert remote.urls and remote.pinned_by
            hashes = [remote.sha256] if remote.sha256 else [h for _, h in remote.members]
            assert hashes and all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)

    def test_list_datasets(self, cache):
        """list_datasets gives one dict per dataset with its size and licence."""
        rows = D.list_datasets()
        assert [r["name"] for r in rows] == list(D.DATASETS)
        assert all(r["licence"] and r["size"] > 0 for r in rows)

    def test_unknown_name(self):
        """An unknown dataset name is a user error listing the valid names."""
        with pytest.raises(UlmfitError, match="wikitext2"):
            D.fetch("wikitext3")


class TestDownload:
    def test_success(self, server, cache):
        """A verified download lands in the cache and is read in the upstream-archive form."""
        url, archive = server
        folder = D.fetch(toy_spec([f"{url}/ok/wikitext-2-v1.zip"], archive))
        assert (folder / "wikitext-2-v1.zip").read_bytes() == archive
        # the file opens with " \n", which makes an empty first document
        articles = [d for d in F.read_wikitext(folder, "2")["train"] if d.strip()]
        assert articles[0].startswith("= Alpha =") and len(articles) == 2

    def test_cached_is_not_downloaded_again(self, server, cache):
        """A second fetch uses the cache and makes no request."""
        url, archive = server
        spec = toy_spec([f"{url}/again/wikitext-2-v1.zip"], archive)
        D.fetch(spec)
        n = len(_Handler.hits)
        D.fetch(spec)
        assert len(_Handler.hits) == n

    def test_checksum_mismatch(self, server, cache):
        """A body with the wrong sha256 fails in one line and leaves nothing in the cache."""
        url, archive = server
        with pytest.raises(UlmfitError, match="sha256 mismatch") as e:
            D.fetch(toy_spec([f"{url}/ok/wikitext-2-v1.zip"], archive, sha256="0" * 64))
        assert "\n" not in str(e.value) and _files(cache) == []

    def test_truncated(self, server, cache):
        """A connection that closes early is an error, not a short file in the cache."""
        url, archive = server
        with pytest.raises(UlmfitError, match="truncated|IncompleteRead"):
            D.fetch(toy_spec([f"{url}/truncated/wikitext-2-v1.zip"], archive))
        assert _files(cache) == []

    def test_404(self, server, cache):
        """An HTTP 404 names the URL, the expected file and ULMFIT_MIRROR."""
        url, archive = server
        with pytest.raises(UlmfitError) as e:
            D.fetch(toy_spec([f"{url}/missing.zip"], archive))
        msg = str(e.value)
        assert "HTTP 404" in msg and f"{url}/missing.zip" in msg and "ULMFIT_MIRROR" in msg
        assert str(cache / "toywiki" / "wikitext-2-v1.zip") in msg and _files(cache) == []

    def test_fallback_url(self, server, cache):
        """When the first URL fails the next one is tried."""
        url, archive = server
        folder = D.fetch(toy_spec([f"{url}/missing.zip", f"{url}/ok/wikitext-2-v1.zip"], archive))
        assert (folder / "wikitext-2-v1.zip").is_file()

    def test_no_network(self, cache):
        """Without a reachable host the error is one line naming the URL, the file and the variable."""
        spec = toy_spec(["http://127.0.0.1:9/x.zip"], b"zip")
        with pytest.raises(UlmfitError) as e:
            D.fetch(spec)
        msg = str(e.value)
        assert "\n" not in msg and "http://127.0.0.1:9/x.zip" in msg and "ULMFIT_MIRROR" in msg
        assert not (cache / "toywiki").exists()

    def test_member_hashes(self, server, cache):
        """An archive with no pinned sha256 is accepted only if its member matches."""
        url, archive = server
        good = hashlib.sha256(WIKI["valid"].encode()).hexdigest()
        member = "wikitext-2/wiki.valid.tokens"
        D.fetch(toy_spec([f"{url}/ok/wikitext-2-v1.zip"], archive, sha256="", members=((member, good),)))
        with pytest.raises(UlmfitError, match="wiki.valid.tokens"):
            spec = toy_spec([f"{url}/ok/wikitext-2-v1.zip"], archive, sha256="",
                            members=((member, "1" * 64),))
            D.fetch(dataclasses.replace(spec, name="toywiki2"))


class TestMirror:
    def _mirror(self, tmp_path, monkeypatch, archive: bytes) -> Path:
        (tmp_path / "mirror" / "toywiki").mkdir(parents=True)
        (tmp_path / "mirror" / "toywiki" / "wikitext-2-v1.zip").write_bytes(archive)
        monkeypatch.setenv("ULMFIT_MIRROR", str(tmp_path / "mirror"))
        monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))
        return tmp_path / "mirror" / "toywiki"

    def test_mirror_used(self, tmp_path, monkeypatch):
        """A mirror folder with verified files is used in place, without the network."""
        archive = _wikitext_zip()
        folder = self._mirror(tmp_path, monkeypatch, archive)
        assert D.fetch(toy_spec(["http://127.0.0.1:9/x.zip"], archive)) == folder

    def test_corrupt_mirror(self, tmp_path, monkeypatch):
        """A mirror file failing its sha256 is an error, not silently used."""
        archive = _wikitext_zip()
        self._mirror(tmp_path, monkeypatch, archive + b"junk")
        with pytest.raises(UlmfitError, match="sha256"):
            D.fetch(toy_spec(["http://127.0.0.1:9/x.zip"], archive))


class TestSplits:
    def test_stratified_deterministic(self):
        """The held-out split is a function of the seed and keeps the class balance."""
        labels = ["a"] * 80 + ["b"] * 20
        keep, held = S.stratified_split(labels, 0.1, seed=3)
        assert (keep, held) == S.stratified_split(labels, 0.1, seed=3)
        assert held != S.stratified_split(labels, 0.1, seed=4)[1]
        assert sorted(labels[i] for i in held) == ["a"] * 8 + ["b"] * 2 and len(keep) + len(held) == 100


def _tar(entries: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class TestUpstreamForms:
    def test_imdb_tarball(self, tmp_path):
        """The aclImdb tarball is read without extraction; unsup reviews come back too."""
        (tmp_path / "aclImdb_v1.tar.gz").write_bytes(_tar({
            "aclImdb/train/pos/1_9.txt": b"great", "aclImdb/train/neg/0_2.txt": b"bad",
            "aclImdb/test/pos/3_8.txt": b"fine", "aclImdb/train/unsup/5_0.txt": b"meh"}))
        out = F.read_imdb(tmp_path)
        assert out["train"] == (["bad", "great"], ["neg", "pos"]) and out["unsup"][0] == ["meh"]

    def test_imdb_tarball_ratings(self, tmp_path):
        """With ratings=True the star rating comes from the file name (<id>_<rating>.txt)."""
        (tmp_path / "aclImdb_v1.tar.gz").write_bytes(_tar({
            "aclImdb/train/pos/1_9.txt": b"great", "aclImdb/train/neg/0_2.txt": b"bad",
            "aclImdb/train/unsup/5_0.txt": b"meh"}))
        out = F.read_imdb(tmp_path, ratings=True)
        assert out["train"] == (["bad", "great"], ["neg", "pos"], [2, 9]) and out["unsup"][2] == [0]

    def test_rt_polarity_tarball(self, tmp_path):
        """The Cornell tarball's 8-bit text is decoded as cp1252."""
        (tmp_path / "rt-polaritydata.tar.gz").write_bytes(_tar({
            "rt-polaritydata/rt-polarity.neg": "dull \u2014 very\n".encode("cp1252"),
            "rt-polaritydata/rt-polarity.pos": "caf\u00e9 fun\n".encode("cp1252")}))
        texts, labels = D.DATASETS["rt_polarity"].reader(tmp_path)["train"]
        assert texts == ["dull \u2014 very", "caf\u00e9 fun"] and labels == ["neg", "pos"]


WIKIEXTRACTOR = ('<doc id="1" url="u" title="Alpha">\nAlpha\n\n' + "word " * 60 + " \n \nSecond para.  \n</doc>\n"
                 '<doc id="2" url="u" title="Short">\nShort\n\nToo short to keep.\n</doc>\n'
                 '<doc id="3" url="u" title="American Beauty (1999 film)">\nAmerican Beauty (1999 film)\n\n'
                 + "word " * 60 + "\n</doc>\n")


class TestNewFormats:
    def test_wikiextractor_documents(self):
        """WikiExtractor blocks -> title line + stripped paragraphs; short docs and WikiText's articles dropped."""
        docs = list(F.wikiextractor_documents(WIKIEXTRACTOR.splitlines(keepends=True)))
        assert docs == ["Alpha\n" + ("word " * 60).strip() + "\nSecond para."]

    def test_wikipedia_forms_agree(self, tmp_path):
        """The upstream files and the mirror's shards give the same documents, and the same valid split."""
        import gzip
        up, mi = tmp_path / "up", tmp_path / "mirror"
        up.mkdir(), mi.mkdir()
        block = WIKIEXTRACTOR.split('<doc id="2"')[0]
        texts = [block.replace("Alpha", f"A{k}") for k in range(600)]
        (up / "AA_wiki_00").write_text("".join(texts[:300]), encoding="utf-8")
        (up / "AA_wiki_01").write_text("".join(texts[300:]), encoding="utf-8")
        docs = list(F.wikiextractor_documents("".join(texts).splitlines(keepends=True)))
        with gzip.open(mi / "wiki-00000.txt.gz", "wt", encoding="utf-8") as f:
            f.write("\n\n".join(d.replace("Second para.", "Second para.  ") for d in docs) + "\n")
        a, b = F.read_wikipedia_2015(up), F.read_wikipedia_2015(mi)
        assert list(a["train"]) == list(b["train"]) and list(a["valid"]) == list(b["valid"])
        assert len(list(a["valid"])) == 2 and len(list(a["train"])) == 598

    def test_tweeteval_reader(self, tmp_path):
        """TweetEval's label ids are named by mapping.txt; a text/label line-count mismatch is one line."""
        (tmp_path / "mapping.txt").write_text("0\tnot\n1\tyes")
        for split in ("train", "val", "test"):
            (tmp_path / f"{split}_text.txt").write_text("a tweet \nanother \n")
            (tmp_path / f"{split}_labels.txt").write_text("0\n1\n")
        out = F.read_tweeteval(tmp_path)
        assert out["valid"] == (["a tweet", "another"], ["not", "yes"])
        (tmp_path / "test_labels.txt").write_text("0\n")
        with pytest.raises(UlmfitError, match="test_text.txt has 2 lines"):
            F.read_tweeteval(tmp_path)

    def test_20newsgroups_tarball(self, tmp_path):
        """The upstream bydate tarball: one post per file, Latin-1, labelled by its folder."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, body in [("20news-bydate-train/sci.space/12", "From: a\n\nOrbit \xe9".encode("latin-1")),
                               ("20news-bydate-test/alt.atheism/3", b"From: b\n\nGod")]:
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        (tmp_path / "20news-bydate.tar.gz").write_bytes(buf.getvalue())
        out = F.read_20newsgroups(tmp_path)
        assert out["train"] == (["From: a\n\nOrbit \xe9"], ["sci.space"]) and out["test"][1] == ["alt.atheism"]

    def test_subj_zip(self, tmp_path):
        """SUBJ's upstream NLTK zip is read as UTF-8, one sentence per line, labelled by its file."""
        with zipfile.ZipFile(tmp_path / "subjectivity.zip", "w") as z:
            z.writestr("subjectivity/plot.tok.gt9.5000", "a plot sentence \nanother one\n")
            z.writestr("subjectivity/quote.tok.gt9.5000", "caf\u00e9 quote\n")
        out = D.DATASETS["subj"].reader(tmp_path)
        assert out["train"] == (["a plot sentence", "another one", "caf\u00e9 quote"],
                                ["objective", "objective", "subjective"])


@needs_mirror
class TestRealMirror:
    @pytest.fixture(autouse=True)
    def _env(self, tmp_path, monkeypatch):
        monkeypatch.setenv("ULMFIT_MIRROR", str(MIRROR))
        monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))

    def test_wikitext2_articles(self):
        """WikiText-2 from the mirror: articles (the first is Valkyria Chronicles III), every line kept."""
        corpus = D.load_lm_corpus("wikitext2")
        articles = [d for d in corpus["train"] if d]
        assert articles[0].startswith("= Valkyria Chronicles III =")
        assert sum(d.startswith("= ") for d in corpus["valid"]) == 60
        assert sum(d.count("\n") + 1 for d in corpus["valid"]) == 3760           # torchtext's NUM_LINES

    def test_ptb_one_document_per_split(self):
        """PTB: each split is one document with one sentence per line."""
        corpus = D.load_lm_corpus("ptb")
        assert len(corpus["train"]) == 1 and corpus["train"][0].count("\n") + 1 == 42068

    def test_clickbait_split(self):
        """Clickbait: 32,000 headlines, a fixed 20% test split, a seeded 10% valid carved from train."""
        a, b = D.load_labelled("clickbait", seed=0), D.load_labelled("clickbait", seed=1)
        assert [len(a[k][0]) for k in ("train", "valid", "test")] == [23040, 2560, 6400]
        assert a["test"] == b["test"] and a["valid"] != b["valid"]

    def test_imdb_sample_and_rt(self):
        """imdb_sample keeps fastai's 200 as test; rt_polarity has 10,662 sentences."""
        assert len(D.load_labelled("imdb_sample")["test"][0]) == 200
        assert sum(len(t) for t, _ in D.load_labelled("rt_polarity").values()) == 10662

    @pytest.mark.parametrize("name, sizes, n_labels", [
        ("tweeteval_offensive", [11916, 1324, 860], 2), ("tweeteval_irony", [2862, 955, 784], 2),
        ("20newsgroups", [10184, 1130, 7532], 20), ("subj", [7200, 800, 2000], 2)])
    def test_new_labelled_sets(self, name, sizes, n_labels):
        """TweetEval keeps its official train/val/test, 20 Newsgroups its test (valid carved from train), SUBJ
        (no official split) a seeded stratified 80/20 test split; labels are names, not ids."""
        splits = D.load_labelled(name)
        assert [len(splits[k][0]) for k in ("train", "valid", "test")] == sizes
        labels = set(splits["train"][1])
        assert len(labels) == n_labels and not labels & {"0", "1"}
        assert all(t.strip() for t in splits["train"][0])

    def test_wikipedia_2015_streams(self):
        """wikipedia_2015: train is a stream (never a list), valid ~105 whole articles spread over the shards."""
        corpus = D.load_lm_corpus("wikipedia_2015")
        assert isinstance(corpus["train"], F.WikiDocuments) and set(corpus) == {"train", "valid"}
        valid = list(corpus["valid"])
        assert len(valid) == 105 and valid[0].split("\n")[0] == "Aircraft"
        first = next(iter(corpus["train"]))
        assert first.startswith("Anarchism\nAnarchism is a political philosophy")

    @pytest.mark.slow
    def test_imdb(self):
        """IMDb: official 25k test; the LM corpus adds the 50k unsup reviews to train."""
        assert len(D.load_labelled("imdb")["test"][0]) == 25000
        assert len(D.load_lm_corpus("imdb")["train"]) == 22500 + 50000
