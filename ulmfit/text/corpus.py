"""text/ layer, after the tokenizers: a corpus -> a compact memory-mapped id array, numericalised in worker processes.

On disk a numericalised corpus is `<prefix>.ids.npy` (flat uint16/int32) + `<prefix>.offsets.npy` (int64,
n_docs+1), written by streaming chunks from worker processes and read back with `np.load(mmap_mode="r")`, so a
corpus larger than memory (WikiText-103) is never held in RAM.

The tokenizer comes in as an argument (`Tokenizer.encode_corpus` passes itself): this module only needs its
`vocab_size` and `encode_documents`, and does not import tokenizer.py, which imports it. Worker processes get
the tokenizer pickled (SentencePiece pickles its model as bytes), so they encode exactly as the parent does.
"""
from __future__ import annotations

import os
from collections import deque
from itertools import chain
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from ..errors import UlmfitError


def write_corpus(tokenizer, documents: Iterable[str], prefix: Path, processes: int = 1,
                 desc: str = "tokenize", chunk_chars: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Numericalise `documents` with `tokenizer` (a `Tokenizer`) into <prefix>.ids.npy/.offsets.npy; return
    the memmaps.

    Documents are grouped into ~1 MB chunks; at most 2 chunks per worker are in flight (Pool.imap would read the
    whole input ahead into its queue), results are appended to the file in order as they arrive.
    """
    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.int32
    chunks = _chunked(documents, chunk_chars)
    total = len(documents) if hasattr(documents, "__len__") else None
    write = _CorpusWriter(Path(prefix), dtype)
    bar = tqdm(total=total, desc=desc, unit="doc", disable=None)
    try:
        if processes <= 1:
            for chunk in chunks:
                write(*_to_arrays(tokenizer.encode_documents(chunk), dtype))
                bar.update(len(chunk))
        else:
            ctx = get_context("forkserver" if "forkserver" in get_all_start_methods() else "spawn")
            with ctx.Pool(processes, _init_worker, (tokenizer, dtype)) as pool:
                pending: deque = deque()
                for chunk in chunks:
                    pending.append((len(chunk), pool.apply_async(_encode_chunk, (chunk,))))
                    while len(pending) >= 2 * processes:
                        n, res = pending.popleft()
                        write(*res.get())
                        bar.update(n)
                while pending:
                    n, res = pending.popleft()
                    write(*res.get())
                    bar.update(n)
        write.close()
    finally:
        bar.close()
        write.abort()                     # no-op after close(); removes half-written files otherwise
    return load_corpus(prefix)


def load_corpus(prefix) -> tuple[np.ndarray, np.ndarray]:
    """(ids memmap (N,), offsets (n_docs + 1,)) of a corpus written by `write_corpus`."""
    prefix = Path(prefix)
    ids_path, off_path = Path(f"{prefix}.ids.npy"), Path(f"{prefix}.offsets.npy")
    if not ids_path.is_file() or not off_path.is_file():
        raise UlmfitError(f"no numericalised corpus at {prefix}.ids.npy / .offsets.npy")
    return np.load(ids_path, mmap_mode="r"), np.load(off_path)


# ---- worker side: one tokenizer per process, unpickled once by the pool initializer ------------------------
_W: dict = {}


def _init_worker(tokenizer, dtype) -> None:
    _W.update(tokenizer=tokenizer, dtype=dtype)


def _to_arrays(encoded: list[list[int]], dtype) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(d) for d in encoded], dtype=np.int64)
    ids = np.array(list(chain.from_iterable(encoded)), dtype=dtype)
    return ids, lengths


def _encode_chunk(docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _to_arrays(_W["tokenizer"].encode_documents(docs), _W["dtype"])


def _chunked(documents: Iterable[str], chunk_chars: int) -> Iterator[list[str]]:
    chunk, size = [], 0
    for doc in documents:
        chunk.append(doc)
        size += len(doc)
        if size >= chunk_chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# ---- streaming .npy writer ---------------------------------------------------------------------------------
_HEADER_BYTES = 128        # room for any 1-D shape; patched once the length is known


def _npy_header(dtype, n: int) -> bytes:
    d = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n,)})
    body = d.encode("latin1")
    body += b" " * (_HEADER_BYTES - 10 - len(body) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + (len(body)).to_bytes(2, "little") + body


class _CorpusWriter:
    """Appends id chunks to `<prefix>.ids.npy.tmp`; close() fixes the header and renames (atomic)."""

    def __init__(self, prefix: Path, dtype):
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self.dtype, self.n, self.lengths = np.dtype(dtype), 0, []
        self.final = Path(f"{prefix}.ids.npy"), Path(f"{prefix}.offsets.npy")
        self.tmp = [Path(f"{p}.tmp") for p in self.final]
        self.f = open(self.tmp[0], "wb")
        self.f.write(_npy_header(self.dtype, 0))

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self.n += len(ids)
        self.lengths.append(lengths)                 # 8 bytes per document: small next to the ids

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(_npy_header(self.dtype, self.n))
        self.f.close()
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        with open(self.tmp[1], "wb") as f:
            np.save(f, offsets)
        for tmp, final in zip(self.tmp, self.final):
            os.replace(tmp, final)

    def abort(self) -> None:
        if not self.f.closed:
            self.f.close()
        for tmp in self.tmp:
            tmp.unlink(missing_ok=True)
