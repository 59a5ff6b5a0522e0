"""Object storage: corpora, audio and output shards addressed as ``s3://bucket/prefix`` (through ``pyarrow.fs``).

Why pyarrow.fs and not s3fs/boto3: pyarrow is already how every shard is read and written, its S3 client
(the AWS C++ SDK) does ranged reads for a seekable file object, which soundfile needs to decode one segment of
an hour-long FLAC without fetching the whole object, and it adds no dependency. Anything ``pyarrow.fs`` knows
(``gs://``, ``hdfs://``) goes through ``FileSystem.from_uri``; ``s3://`` gets the endpoint and region handling
below so S3-compatible stores (MinIO, Ceph, R2, a test's moto server) work.

Endpoint and credentials: ``endpoint_url=`` or ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``
(``http://host:port`` for a local server); region from ``$AWS_REGION`` / ``$AWS_DEFAULT_REGION``; keys from the
usual AWS chain (env, ``~/.aws``, the instance role on a cloud node). Nothing here creates buckets.

Atomic writes: an S3 object appears whole or not at all when its upload completes (a multipart upload
becomes visible only at its final ``complete``), and there is no rename. So a shard is serialized in memory
first (a failed serialization uploads nothing) and then put to its final key in one upload; a marker is
written only after its data (``write_parquet`` then ``write_text``), so a reader that sees a marker sees the
data. Local paths keep the temporary-name + ``os.replace`` behaviour.

Order: listings are sorted (S3 already lists keys in byte order), so discovery is the same on every machine.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_FS: dict[tuple[str, str], pafs.FileSystem] = {}  # per process: one S3 client per endpoint


class StorageError(OSError):
    """A remote path that cannot be used, with the URI and the fix."""


def is_remote(path: Any) -> bool:
    """``s3://...`` (or any other ``scheme://``) rather than a local path. ``file://`` counts as local."""
    s = os.fspath(path) if not isinstance(path, str) else path
    return "://" in s and not s.startswith("file://")


def join(base: str, *names: str) -> str:
    """``join("s3://b/runs", "manifest", "x.parquet")``: plain ``/`` joining, for URIs and posix paths alike."""
    return "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])


def filesystem(uri: str, endpoint_url: str | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system for ``uri`` and the path inside it (``bucket/key`` for S3)."""
    if not is_remote(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    if not parsed.netloc:
        raise StorageError(f"{uri}: no bucket; write s3://BUCKET/prefix")
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    key = ("s3", endpoint)
    if key not in _FS:
        kw: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                              or "us-east-1"}
        if endpoint:
            ep = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kw.update(endpoint_override=ep.netloc, scheme=ep.scheme or "https")
        _FS[key] = pafs.S3FileSystem(**kw)
    return _FS[key], f"{parsed.netloc}{parsed.path}".rstrip("/")


def _uri(uri: str, path: str) -> str:
    """Back from a file system path to the caller's form (``s3://bucket/key`` or the local path)."""
    return f"{urlparse(uri).scheme}://{path}" if is_remote(uri) else path


def info(uri: str) -> pafs.FileInfo:
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path)
    except OSError as e:
        raise StorageError(f"{uri}: cannot reach it ({e}); check the endpoint (AWS_ENDPOINT_URL), the "
                           f"credentials and the bucket name") from e


def check_root(uri: str, what: str, want_dir: bool = True) -> str:
    """The URI of an existing prefix (``want_dir``) or object, else the error ``discovery.check_root`` raises for
    a local path: ``FileNotFoundError`` / ``NotADirectoryError`` saying what was expected there."""
    fs, path = filesystem(uri)
    kind = info(uri).type
    if not want_dir:
        if kind != pafs.FileType.File:
            raise FileNotFoundError(f"{uri}: no such object; give the {what} file (check the recipe's input)")
        return uri
    if kind == pafs.FileType.File:
        raise NotADirectoryError(f"{uri}: is an object, not a prefix; the {what} recipe expects a folder")
    if not fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False)):
        raise FileNotFoundError(f"{uri}: no objects under this prefix; give the {what} root (check the recipe's "
                                f"input.root and the bucket)")
    return uri.rstrip("/")


def walk(uri: str) -> Iterator[tuple[str, list[str]]]:
    """``(folder URI, sorted object names)`` depth-first in sorted order: the shape ``discovery.walk`` yields
    for local trees, so a corpus kind walks a bucket prefix unchanged. Hidden names (``.x``) are skipped."""
    fs, path = filesystem(uri)
    stack = [path]
    while stack:
        d = stack.pop()
        entries = fs.get_file_info(pafs.FileSelector(d, allow_not_found=True, recursive=False))
        files = sorted(e.base_name for e in entries if e.type == pafs.FileType.File and e.base_name[:1] != ".")
        dirs = sorted((e.path for e in entries if e.type == pafs.FileType.Directory and e.base_name[:1] != "."),
                      reverse=True)
        yield _uri(uri, d), files
        stack.extend(dirs)


def list_files(uri: str, suffixes: tuple[str, ...] | set[str] = ()) -> list[str]:
    """Every object under ``uri`` (recursively) whose name ends in one of ``suffixes`` (any case), sorted."""
    fs, path = filesystem(uri)
    sel = pafs.FileSelector(path, allow_not_found=True, recursive=True)
    want = tuple(s.lower() for s in suffixes)
    found = [e.path for e in fs.get_file_info(sel) if e.type == pafs.FileType.File
             and (not want or e.path.lower().endswith(want)) and "/." not in e.path[len(path):]]
    return [_uri(uri, p) for p in sorted(found)]


def open_input(uri: str) -> BinaryIO:
    """A seekable binary file (``read``/``seek``/``tell``) over ``uri``: ranged GETs, not a whole download.
    ``soundfile.SoundFile(open_input(uri))`` decodes a segment of a remote WAV/FLAC/OGG this way."""
    fs, path = filesystem(uri)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: no such object; check the path (listed with `aws s3 ls`)") from e


def readable(path: str) -> str | BinaryIO:
    """What ``soundfile`` opens: the path itself, or a seekable remote file (``open_input``) for a URI."""
    return open_input(path) if is_remote(path) else path


@contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local file with ``uri``'s bytes for tools that need a path (FFmpeg for MP3/M4A/Opus), removed after.
    A local path is yielded as it is."""
    if not is_remote(uri):
        yield uri
        return
    suffix = os.path.splitext(urlparse(uri).path)[1]
    fd, tmp = tempfile.mkstemp(prefix="slmf-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, open_input(uri) as src:
            while chunk := src.read(8 << 20):
                out.write(chunk)
        yield tmp
    finally:
        os.unlink(tmp)


def _put(uri: str, data: bytes | pa.Buffer) -> None:
    """One object, whole or nothing (module docstring); local paths: temporary name + rename."""
    if not is_remote(uri):
        path = os.path.abspath(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            f.write(memoryview(data))
        os.replace(tmp, path)
        return
    fs, path = filesystem(uri)
    with fs.open_output_stream(path) as out:
        out.write(data)


def upload(local: str, uri: str) -> None:
    """Copy a local file or folder tree to ``uri`` (a corpus into a bucket; tests, demos)."""
    fs, path = filesystem(uri)
    pafs.copy_files(os.path.abspath(local), path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)


def write_parquet(table: pa.Table, uri: str, **kw: Any) -> None:
    """Write ``table`` as one Parquet object at ``uri``, atomically (serialized in memory, then one upload)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kw)
    _put(uri, sink.getvalue())


def write_text(uri: str, text: str) -> None:
    """A small text object (a shard marker, run.json), atomically; write it after the data it vouches for."""
    _put(uri, text.encode("utf-8"))


def read_bytes(uri: str) -> bytes:
    """A whole object (a transcript, a JSON marker), or a local file's bytes."""
    if not is_remote(uri):
        with open(uri, "rb") as f:
            return f.read()
    with open_input(uri) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def read_parquet(uri: str) -> pa.Table:
    fs, path = filesystem(uri)
    return pq.read_table(path, filesystem=fs)


def read_manifest(uri: str, folder: str = "manifest") -> pa.Table:
    """Every ``shard-*.parquet`` of a run folder's ``manifest`` (or ``errors``), in shard order, as one table."""
    files = [u for u in list_files(join(uri, folder), (".parquet",)) if os.path.basename(u).startswith("shard-")]
    if not files:
        raise FileNotFoundError(f"{join(uri, folder)}: no shard-*.parquet; is {uri} a finished run folder?")
    return pa.concat_tables([read_parquet(u) for u in files], promote_options="permissive")
