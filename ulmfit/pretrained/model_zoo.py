"""pretrained/ layer: the published pretrained language models (fastai's WikiText-103 AWD-LSTM, ULMFiT §3.1's kind), fetched and imported.

What they are: fastai's 2019 retrain on WikiText-103 (fastai 1.0.53, June 2019: its CHANGES.md moved the default
AWD-LSTM to 1152 hidden and released these models; 60,000-word vocabulary), tokenized with fastai v1's rules (so
imports select the `fastai_v1` rule set). With them fastai reproduced the paper's IMDb accuracy, 95.4% (fastai1
`examples/ULMFit.ipynb`); no other figure of the paper is known to have been reproduced with them. They are not
the paper's own LM (fastai 0.7's `fwd_wt103.h5`, 1150 hidden). No licence for the weights is stated by fastai
(not in fastai 1.0.53's datasets.py or docs, nor fastdownload's urls.py); fastai's Apache-2.0 licence covers its code.

`PRETRAINED` maps a name to a `PretrainedSpec`, built as the dataset registry is (registry.py): upstream URLs,
size, licence, citation, a cache (`$ULMFIT_CACHE/<name>/`), a mirror (`$ULMFIT_MIRROR/<name>/` holding the
tarball or its two files), downloads into a temp file that is renamed into the cache only after every check.

Nobody publishes a sha256 of fastai's model-zoo tarballs. fastdownload (fastai's downloader) pins their size and
the md5 of their first MiB; we check those, then the archive's structure: one `.pth` and one `.pkl`, a vocabulary
that unpickles as a list of str without running anything, weights whose key names, shapes and dtypes are those of
the `paper` preset's AWD-LSTM. A user who trusts a copy can pin its sha256 (`--sha256`); the sha256 of every
archive imported is recorded in the run dir's config.json.

    download_pretrained("wt103-fwd", "runs/wt103-fwd")    # = ulmfit lm download wt103-fwd --out runs/wt103-fwd
    finetune(config, "wt103-fwd", data, out)              # a registry name works wherever a pretrain dir does
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..data import download
from ..errors import UlmfitError
from .fastai_interop import import_fastai
from ..data.registry import Remote

_ZOO = "https://s3.amazonaws.com/fast-ai-modelzoo/"
_PIN = "fastdownload urls.py ({}: size + md5 of the first MiB); no sha256 is published"


@dataclass(frozen=True)
class PretrainedSpec:
    name: str
    description: str
    licence: str
    citation: str
    homepage: str
    archive: Remote
    backwards: bool
    preset: str = "paper"
    rules: str = "fastai_v1"          # the tokenization rules the model was trained with (fastai 1.0.53's)


def _wt103(direction: str, key: str, size: int, head_md5: str) -> PretrainedSpec:
    return PretrainedSpec(
        name=f"wt103-{direction}",
        description=f"fastai's 2019 WikiText-103 retrain (fastai 1.0.53), reading "
                    f"{'forward' if direction == 'fwd' else 'backward'} (embedding 400, hidden 1152, 3 layers, "
                    "60k-word vocabulary, fastai v1 tokenization); fastai reproduced IMDb 95.4% with it "
                    "(fastai1 examples/ULMFit.ipynb); not the paper's fastai 0.7 fwd_wt103.h5 (hidden 1150). "
                    "CPU cost, paper preset in fp32 on 2 cores: about 4.8 min per 1,000 headlines, 1.8 h per "
                    "1,000 reviews (benchmarks/results/wt103_cost.txt)",
        licence="weights: no licence stated by fastai (fastai's Apache-2.0 covers its code); trained on "
                "WikiText-103 (CC BY-SA 3.0)",
        citation="Howard & Ruder, ACL 2018 (ULMFiT); Merity et al., ICLR 2017 (WikiText-103)",
        homepage="https://docs.fast.ai/text.models.awdlstm.html",
        archive=Remote(f"wt103-{direction}.tgz", (f"{_ZOO}wt103-{direction}.tgz",), None, size, _PIN.format(key),
                       head_md5=head_md5),
        backwards=direction == "bwd")


PRETRAINED = {s.name: s for s in (
    _wt103("fwd", "WT103_FWD", 105067061, "7d1114cd9684bf9d1ca3c9f6a54da6f9"),
    _wt103("bwd", "WT103_BWD", 105205312, "20b06f5830fd5a891d21044c28d3097f"),
)}


# ---- the LMs that ship inside ulmfit (ulmfit/shipped/<name>/): usable offline, from a fresh clone -----------------
SHIPPED_DIR = Path(__file__).with_name("shipped")


@dataclass(frozen=True)
class ShippedSpec:
    """A pretrain run dir committed in the package as fp16 weights, its tokenizer and config.json, and
    PROVENANCE.md (command, commit, corpus, hardware, wall time, steps, tokens seen, validation perplexity).
    `files` pins each file's sha256 and size, checked on every use: a damaged copy is one line, never a model."""
    name: str
    description: str
    files: tuple[tuple[str, str, int], ...]          # (file name, sha256, bytes)
    backwards: bool
    licence: str = "weights: Apache-2.0, as ulmfit; trained on Wikipedia text (CC BY-SA 3.0)"
    citation: str = "this repository (ulmfit); PROVENANCE.md beside the weights says how they were trained"

    @property
    def folder(self) -> Path:
        return SHIPPED_DIR / self.name


# The two directions share one tokenizer (the backward run reused the forward one's with --tokenizer): one text,
# one tokenisation, for both halves of the ensemble. Each folder keeps its own copy, so each is a whole run dir.
_WIKI_TOKENIZER = (
    ("tokenizer.model", "61a2a4a2c75ec05fa6c24a28d7f489eb11a97194697b259cd54c0b3a0fde2540", 374353),
    ("vocab.txt", "7f7584d73a9e39ee7cdb83d1d198199b54af0a1e763bdc7fd1b0ed6449b4df63", 70213),
)
SHIPPED: dict[str, ShippedSpec] = {s.name: s for s in (
    # benchmarks/ship_lm.py wrote both (benchmarks/results/shipped_lm.txt); this one from a 105-minute CPU pretraining
    ShippedSpec("ulmfit-wiki-fwd", backwards=False,
                description="ulmfit's own forward AWD-LSTM (emb 256, hidden 512, 3 layers, 8,000 SentencePiece "
                            "pieces), 15.1M tokens of 65M-word Wikipedia (wikipedia_2015) on one CPU core",
                files=(
                    ("PROVENANCE.md", "c0ef9364dab1cb9dc1eae99283110bafb42f659d2c90c3cf190002b7b80c4ef7", 1468),
                    ("config.json", "54cf8b44b25f9a99357fca23a5b358075cb8bef46f2e6f4f48d4bcd959362560", 3027),
                    ("model.pt", "d6d9beb002f5e9676871bb946869481ea75ec83b5f2a00c8c905159a1bf45cc5", 17146230),
                ) + _WIKI_TOKENIZER),
    # its backward twin: the same corpus, tokenizer and recipe on the reversed token stream (100 CPU minutes)
    ShippedSpec("ulmfit-wiki-bwd", backwards=True,
                description="ulmfit's own backward AWD-LSTM (the forward one's size and tokenizer), 25.4M tokens "
                            "of 65M-word Wikipedia (wikipedia_2015) read backwards on one CPU core",
                files=(
                    ("PROVENANCE.md", "0a8b23c959b5a28a435203205bf887ab89fa71437209ebad3d3d5e3ddc3c88cc", 1612),
                    ("config.json", "ce6fcc78fba0d3ec369db398ccda6055b847d50bf29fcb3c7a0348442ddb98b7", 3122),
                    ("model.pt", "17dc4e022367485e47d6a1fc33e55426faa98916bde1cba5b5d759a853f898db", 17146230),
                ) + _WIKI_TOKENIZER),
)}


def verify_shipped(spec: ShippedSpec) -> Path:
    """The shipped run dir, after checking every file's size and sha256 against the registry."""
    for filename, sha, size in spec.files:
        path = spec.folder / filename
        if not path.is_file():
            raise UlmfitError(f"the shipped LM {spec.name} is missing {path}; reinstall ulmfit (or `git checkout "
                              f"-- {path}` in a clone)")
        if path.stat().st_size != size or download.sha256_file(path) != sha:
            raise UlmfitError(f"the shipped LM file {path} is damaged (its size or sha256 is not the one "
                              f"registered: {sha[:16]}...); reinstall ulmfit (or `git checkout -- {path}`)")
    return spec.folder


def get_pretrained_spec(name) -> PretrainedSpec:
    if isinstance(name, PretrainedSpec):
        return name
    if name not in PRETRAINED:
        raise UlmfitError(f"unknown pretrained model {name!r}; choose one of {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def list_pretrained() -> list[dict]:
    shipped = [dict(name=s.name, size_mb=round(sum(size for _, _, size in s.files) / 1e6, 1), licence=s.licence,
                    description=s.description, citation=s.citation, urls=[], pinned_by="sha256 in model_zoo.py",
                    cached=True, shipped=True) for s in SHIPPED.values()]
    return shipped + [dict(name=s.name, size_mb=round(s.archive.size / 1e6, 1), licence=s.licence, description=s.description,
                 citation=s.citation, urls=list(s.archive.urls), pinned_by=s.archive.pinned_by,
                 cached=(download.cache_dir() / s.name / s.archive.filename).is_file())
            for s in PRETRAINED.values()]


# ---- the files: from an archive or a folder -------------------------------------------------------------------
def read_model_files(path: Path) -> tuple[bytes, bytes, tuple[str, str]]:
    """(weights bytes, vocabulary bytes, their names) from a fastai model-zoo tarball or a folder holding one
    `.pth` and one `.pkl` (the layout fastai's `language_model_learner` globs for). One-line UlmfitError else."""
    path = Path(path)
    if path.is_dir():
        found = {ext: sorted(path.glob(f"*.{ext}")) for ext in ("pth", "pkl")}
        if not all(len(v) == 1 for v in found.values()):
            raise UlmfitError(f"{path} must hold exactly one .pth and one .pkl (fastai's layout); found "
                              f"{', '.join(p.name for v in found.values() for p in v) or 'neither'}")
        pth, pkl = found["pth"][0], found["pkl"][0]
        return pth.read_bytes(), pkl.read_bytes(), (str(pth), str(pkl))
    try:
        with tarfile.open(path) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            found = {ext: [m for m in members if m.name.endswith(f".{ext}")] for ext in ("pth", "pkl")}
            if not all(len(v) == 1 for v in found.values()):
                raise UlmfitError(f"{path.name} must hold exactly one .pth and one .pkl (fastai's layout); it holds "
                                  f"{', '.join(m.name for m in members[:6]) or 'no files'}")
            pth, pkl = found["pth"][0], found["pkl"][0]
            return (tar.extractfile(pth).read(), tar.extractfile(pkl).read(),
                    (f"{path.name}:{pth.name}", f"{path.name}:{pkl.name}"))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UlmfitError(f"{path} is not a readable tarball ({type(e).__name__}: {e})") from None


def _check_archive(spec: PretrainedSpec):
    """The structural check run on a download before it may enter the cache (import_fastai into nowhere)."""
    def validate(tmp: Path) -> None:
        weights, vocab, names = read_model_files(tmp)
        import_fastai(weights, vocab, None, spec.preset, spec.backwards, sources=names)
    return validate


def fetch_pretrained(name, sha256: str | None = None) -> Path:
    """The model's tarball (or a mirror folder holding its files): mirror, else cache, else a verified download."""
    spec = get_pretrained_spec(name)
    remote = spec.archive if sha256 is None else dataclasses.replace(spec.archive, sha256=sha256.lower(),
                                                                      pinned_by="the user (--sha256)")
    mirror, notes = download.mirror_dir(), []
    if mirror is not None:
        folder = mirror / spec.name
        if (folder / remote.filename).is_file():
            _verify_local(folder / remote.filename, remote)
            return folder / remote.filename
        if folder.is_dir() and any(folder.glob("*.pth")):
            return folder
        notes.append(f"ULMFIT_MIRROR={mirror} has no {spec.name}/ folder")
    final = download.cache_dir() / spec.name / remote.filename
    if final.is_file() and final.stat().st_size == remote.size:
        if sha256 is not None:
            _verify_local(final, remote)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in remote.urls:
        try:
            download.download(url, final, remote.sha256, remote.size, head_md5=remote.head_md5,
                              validate=_check_archive(spec))
            return final
        except download._Failed as e:       # noqa: SLF001 (the same download machinery as the datasets)
            failures.append(e)
    if not any(final.parent.iterdir()):
        final.parent.rmdir()
    first = failures[0]
    raise UlmfitError(
        f"cannot download {spec.name}: {first.url} failed ({first.reason}); expected {final}. Offline: put "
        f"{remote.filename} (or its .pth and .pkl) in $ULMFIT_MIRROR/{spec.name}/, or import files you have with "
        "`ulmfit lm import --fastai WEIGHTS.pth VOCAB.pkl --out DIR`, or pretrain an LM yourself "
        "(`make pretrain`, or `ulmfit pretrain --dataset wikitext2 --out runs/pre`)" + "".join(f"; {n}" for n in notes))


def _verify_local(path: Path, remote: Remote) -> None:
    if path.stat().st_size != remote.size and remote.sha256 is None:
        raise UlmfitError(f"{path} is {path.stat().st_size} bytes; {remote.filename} is {remote.size} "
                          f"(pinned by {remote.pinned_by})")
    if remote.sha256 is not None and download.sha256_file(path) != remote.sha256:
        raise UlmfitError(f"{path} fails its sha256 check (expected {remote.sha256}, {remote.pinned_by})")
    if remote.sha256 is None and download.head_md5_file(path) != remote.head_md5:
        raise UlmfitError(f"{path}: md5 of the first MiB is {download.head_md5_file(path)}, expected "
                          f"{remote.head_md5} ({remote.pinned_by})")


def download_pretrained(name, out_dir: Path, sha256: str | None = None, force: bool = False) -> dict:
    """Fetch a published LM (once, into the cache) and write it as an ordinary ulmfit `pretrain` run dir; a
    shipped LM is checked and copied (its weights stay fp16; every stage reads them into fp32 modules)."""
    if str(name) in SHIPPED:
        source = verify_shipped(SHIPPED[str(name)])
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()) and not force:
            raise UlmfitError(f"{out_dir} is not empty; pass --force to overwrite it")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(source, out_dir)
        return {"pretrained": str(name), "out": str(out_dir), "shipped": True}
    spec = get_pretrained_spec(name)
    path = fetch_pretrained(spec, sha256)
    weights, vocab, names = read_model_files(path)
    provenance = {"source": spec.name, "url": spec.archive.urls[0], "file": str(path),
                  "archive_sha256": download.sha256_file(path) if path.is_file() else None}
    result = import_fastai(weights, vocab, out_dir, spec.preset, spec.backwards, force, provenance, names, spec.rules)
    return {**result, "pretrained": spec.name, "archive_sha256": provenance["archive_sha256"]}


def resolve_pretrained(path_or_name) -> Path:
    """A run dir as it is, or a registry name (`wt103-fwd`) -> its imported run dir in the cache, fetched and
    imported the first time. The import goes to a temp dir renamed into place, so concurrent first uses (ranks
    under torchrun) cannot see half a run dir."""
    path = Path(path_or_name)
    if not path.exists() and str(path_or_name) in SHIPPED:     # committed in the package: no network, no cache
        return verify_shipped(SHIPPED[str(path_or_name)])
    if path.exists() or str(path_or_name) not in PRETRAINED:
        return path
    final = download.cache_dir() / str(path_or_name) / "run"
    if (final / "config.json").is_file():
        return final
    tmp = final.with_name(f"run.{os.getpid()}.tmp")
    try:
        download_pretrained(str(path_or_name), tmp, force=True)
        try:
            os.rename(tmp, final)
        except OSError:                      # another process got there first: its copy is as good
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def import_files(weights: Path, vocab: Path, out_dir: Path, preset_name: str = "paper", backwards: bool = False,
                 force: bool = False, rules: str | None = None) -> dict:
    """`ulmfit lm import --fastai WEIGHTS.pth VOCAB.pkl --out DIR`: files a user already has -> a run dir
    (`rules`: the fastai rule set; None = from the file's layout, see import_fastai)."""
    for p in (weights, vocab):
        if not Path(p).is_file():
            raise UlmfitError(f"{p} does not exist")
    data_w, data_v = Path(weights).read_bytes(), Path(vocab).read_bytes()
    provenance = {"file": str(weights), "vocab_file": str(vocab)}
    return import_fastai(data_w, data_v, out_dir, preset_name, backwards, force, provenance,
                         (str(weights), str(vocab)), rules)
