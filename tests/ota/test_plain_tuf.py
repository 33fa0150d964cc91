"""A repository written with plain python-tuf (no edgepipe publisher, no custom fields,
no consistent snapshots) updates an edgepipe device."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from edgepipe.ota.store import ModelStore
from ota_helpers import model_bytes
from ota_httpserver import RepoServer
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer


def _plain_repo(d, versions: list[str]):
    """The python-tuf "basic repo" recipe: four roles, one key each, targets NAME/V.tflite."""
    meta, tdir = d / "metadata", d / "targets" / "det"
    meta.mkdir(parents=True)
    tdir.mkdir(parents=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    keys = {
        r: CryptoSigner.generate_ed25519() for r in ("root", "targets", "snapshot", "timestamp")
    }
    root = Root(expires=expires)  # consistent_snapshot defaults to True; turn it off
    root.consistent_snapshot = False
    for role, signer in keys.items():
        root.add_key(signer.public_key, role)
    targets = Targets(expires=expires)
    for v in versions:
        local = tdir / f"{v}.tflite"
        local.write_bytes(model_bytes(v))
        targets.targets[f"det/{v}.tflite"] = TargetFile.from_file(f"det/{v}.tflite", str(local))
    snapshot = Snapshot(expires=expires)
    snapshot.meta["targets.json"] = MetaFile(version=targets.version)
    timestamp = Timestamp(expires=expires)
    timestamp.snapshot_meta = MetaFile(version=snapshot.version)
    ser = JSONSerializer()
    for role, signed in (
        ("root", root),
        ("targets", targets),
        ("snapshot", snapshot),
        ("timestamp", timestamp),
    ):
        md = Metadata(signed)
        md.sign(keys[role])
        md.to_file(str(meta / f"{role}.json"), ser)
        if role == "root":
            md.to_file(str(meta / "1.root.json"), ser)
    return meta / "1.root.json"


def test_plain_python_tuf_repository_updates_an_edgepipe_device(tmp_path):
    root = _plain_repo(tmp_path / "plain", ["1", "1.5", "2"])
    srv = RepoServer(tmp_path / "plain").start()
    try:
        store = ModelStore(
            tmp_path / "dev", name="det", root=root.read_bytes(), edgepipe_version="0.1.0"
        )
        r = store.update(srv.url)
        assert (r.status, r.version, r.variant) == ("installed", "2", None)
        assert store.serving().path.read_bytes() == model_bytes("2")
        assert store.update(srv.url).status == "up_to_date"
        # Plain paths, no hash prefix: what a non-consistent repository serves.
        assert "/targets/det/2.tflite" in srv.requests
    finally:
        srv.stop()
