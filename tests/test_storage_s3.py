"""Corpora and shards in object storage (``manifests/storage.py``) against a real S3 HTTP API: moto in server
mode, started by this test on a free loopback port (fake credentials, no network). Audio: espeak-ng speech
(``generate.make_folder``) plus one FLAC made from it, so seekable segment reads are checked on two formats.
"""
from __future__ import annotations

import json
import socket

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on loopback with one bucket; the env points pyarrow's S3 client at it."""
    pytest.importorskip("moto.server", reason="moto[server] is in the test extra: pip install 'moto[server]'")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        mp.setenv(k, v)
    mp.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    from slmfactory.manifests import storage

    storage._FS.clear()  # a client made for another endpoint must not be reused
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir("corpus")  # the bucket (storage.py creates none)
    yield "s3://corpus"
    storage._FS.clear()
    mp.undo()
    server.stop()


def test_corpus_in_s3_lists_decodes_and_round_trips_a_shard(s3, tmp_path, require_espeak):
    from slmfactory.manifests import generate, storage
    from slmfactory.manifests.audio import AUDIO_EXTS, load_audio

    local = generate.make_folder(tmp_path / "folder", n=3)
    wavs = sorted(local.rglob("*.wav"))
    data, sr = sf.read(wavs[0], dtype="float32")
    sf.write(tmp_path / "folder" / "dir0" / "long.flac", np.tile(data, 4), sr)  # ~4x longer, to seek into
    files = sorted(p for p in local.rglob("*") if p.is_file())
    storage.upload(str(local), f"{s3}/librivox")  # the tree, as `aws s3 cp --recursive` would

    listed = storage.list_files(f"{s3}/librivox", tuple(AUDIO_EXTS))
    assert listed == sorted(f"{s3}/librivox/{p.relative_to(local)}" for p in files if p.suffix in (".wav", ".flac"))
    walked = {d: names for d, names in storage.walk(f"{s3}/librivox")}
    assert walked[f"{s3}/librivox"] == [] and "long.flac" in walked[f"{s3}/librivox/dir0"]
    assert storage.check_root(f"{s3}/librivox", "folder") == f"{s3}/librivox"
    with pytest.raises(FileNotFoundError, match="no objects"):
        storage.check_root(f"{s3}/nothing_here", "folder")
    with pytest.raises(NotADirectoryError):
        storage.check_root(listed[0], "folder")
    assert storage.check_root(listed[0], "jsonl", want_dir=False) == listed[0]

    for uri in listed:  # whole files: the bytes decoded from S3 are the bytes decoded from disk
        with storage.readable(uri) as f:
            remote, rsr = sf.read(f, dtype="float32")
        ref, _ = load_audio(str(local / uri.split("/librivox/", 1)[1]), target_sr=rsr)
        assert rsr == sr and np.array_equal(remote if remote.ndim == 1 else remote.mean(1), ref)
    flac = f"{s3}/librivox/dir0/long.flac"  # one segment, by seeking (ranged reads) in the remote FLAC
    with storage.open_input(flac) as f, sf.SoundFile(f) as snd:
        snd.seek(int(1.5 * sr))
        seg = snd.read(int(0.5 * sr), dtype="float32")
    ref, _ = load_audio(str(local / "dir0" / "long.flac"), start=1.5, duration=0.5, target_sr=sr)
    assert np.array_equal(seg, ref) and np.abs(seg).max() > 0.01
    with storage.local_copy(flac) as path:  # for FFmpeg, which needs a path
        assert sf.info(path).frames == 4 * len(data)

    out = f"{s3}/runs/ingest"  # a shard, then its marker (written after the data), read back
    table = pa.table({"id": [u.rsplit("/", 1)[1] for u in listed], "duration": [sf.info(p).duration for p in
                                                                                [local / u.split("/librivox/", 1)[1] for u in listed]]})
    storage.write_parquet(table, storage.join(out, "manifest", "shard-00001.parquet"))
    storage.write_parquet(table.slice(0, 1), storage.join(out, "manifest", "shard-00000.parquet"))
    storage.write_text(storage.join(out, "_state", "shard-00000.json"), json.dumps({"rows": 1}))
    back = storage.read_manifest(out)
    assert back.to_pylist() == table.slice(0, 1).to_pylist() + table.to_pylist()  # shard order
    assert json.loads(storage.read_text(f"{out}/_state/shard-00000.json")) == {"rows": 1}
    assert [u.rsplit("/", 1)[1] for u in storage.list_files(out)] == [
        "shard-00000.json", "shard-00000.parquet", "shard-00001.parquet"]  # no temporary object left behind


def test_bad_remote_paths_name_the_fix(s3):
    from slmfactory.manifests import storage

    with pytest.raises(FileNotFoundError, match="no such object"):
        storage.open_input(f"{s3}/missing.wav")
    with pytest.raises(storage.StorageError, match="no bucket"):
        storage.filesystem("s3:///key")
    assert storage.is_remote("s3://b/k") and not storage.is_remote("/data/x.wav")


def test_ingest_reads_a_corpus_straight_from_s3(s3, tmp_path, require_espeak):
    """The wiring, end to end: discovery walks ``s3://``, decode/VAD/DNSMOS read the objects (ranged reads),
    and the manifest matches an ingest of the same files from disk (ids aside: they hash the path)."""
    import polars as pl

    from slmfactory.manifests import generate, storage
    from slmfactory.pipelines.runner import run_recipe

    local = generate.make_folder(tmp_path / "folder", n=3)
    storage.upload(str(local), f"{s3}/tree")
    got = {}
    for name, corpus in (("remote", f"{s3}/tree"), ("disk", str(local))):
        res = run_recipe("ingest", {"kind": "folder", "corpus": corpus, "out": str(tmp_path / name)}, executor="local")
        assert res.errors == 0 and res.rows >= 3, (name, res.rows, res.errors)
        got[name] = pl.read_parquet(str(tmp_path / name / "manifest" / "*.parquet")).sort("start", "duration")
    remote, disk = got["remote"], got["disk"]
    assert remote["audio_path"].str.starts_with(f"{s3}/tree/").all()
    assert remote.select("start", "duration", "text").equals(disk.select("start", "duration", "text"))
