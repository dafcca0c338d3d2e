"""data/ layer, after `registry`: the public datasets of ULMFiT §4 (and smaller stand-ins), fetched, verified, read.

The registry (registry.py: `DATASETS`, name -> `DatasetSpec`) says what each dataset is and where its files
live. `fetch(name)` returns a folder holding the files: the mirror if it has them (each file
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
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UlmfitError
from .registry import DATASETS, DatasetSpec, Remote, get_spec  # noqa: F401 (DatasetSpec: re-exported for users)
from .splits import standard_splits

TIMEOUT = 30          # seconds per connection attempt; a dead host fails fast, a slow one still finishes


def cache_dir() -> Path:
    return Path(os.environ.get("ULMFIT_CACHE") or Path.home() / ".cache" / "ulmfit").expanduser()


def mirror_dir() -> Path | None:
    value = os.environ.get("ULMFIT_MIRROR")
    return Path(value).expanduser() if value else None


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


def head_md5_file(path: Path) -> str:
    """md5 of the first MiB (fastdownload's check: it publishes this and the size for fastai's model zoo)."""
    with open(path, "rb") as f:
        return hashlib.md5(f.read(1 << 20)).hexdigest()


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
            download(url, final, remote.sha256, remote.size, remote.members, remote.head_md5)
            return final
        except _Failed as e:
            first = first or _Failed(remote, e.url, e.reason)
    raise first


def download(url: str, final: Path, sha256: str | None, size: int | None = None,
             members: tuple[tuple[str, str], ...] = (), head_md5: str | None = None, validate=None) -> None:
    """Stream `url` into a temp file beside `final`, verify length, sha256 (or members, or the md5 of the first
    MiB), run `validate(temp_path)` (it raises UlmfitError on bad contents), then rename."""
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
        if head_md5 is not None and head_md5_file(tmp) != head_md5:
            raise _Failed(remote, url, f"md5 of the first MiB is {head_md5_file(tmp)}, expected {head_md5}")
        if validate is not None:
            try:
                validate(tmp)
            except UlmfitError as e:
                raise _Failed(remote, url, f"unexpected contents: {e}") from None
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
def load_labelled(name, seed: int = 0, valid_frac: float = 0.1, test_frac: float = 0.2,
                  test_seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """{"train", "valid", "test"} -> (texts, labels). A missing test split is carved with `test_seed` (fixed,
    so every run scores on the same test set); a missing valid split is carved from train with `seed`."""
    spec = get_spec(name)
    if spec.kind != "labelled":
        raise UlmfitError(f"{spec.name} is a language-model corpus, not a labelled dataset")
    return standard_splits(spec.reader(fetch(spec)), seed, valid_frac, test_frac, test_seed)


def load_lm_corpus(name, seed: int = 0) -> dict:
    """{"train", "valid", "test"} -> documents. LM corpora give their official splits (WikiText-103 as a lazy,
    re-iterable stream); a labelled set gives the texts of `load_labelled`'s splits, plus unlabelled texts
    (IMDb's 50k `unsup` reviews) in train, as used for ULMFiT's target-task LM fine-tuning (§3.2)."""
    spec = get_spec(name)
    if spec.kind == "lm":
        return spec.reader(fetch(spec))
    official = spec.reader(fetch(spec))
    splits = standard_splits(official, seed, 0.1, 0.2, 0)
    docs = {k: list(texts) for k, (texts, _) in splits.items()}
    docs["train"] += official.get("unsup", ([], []))[0]
    return docs
