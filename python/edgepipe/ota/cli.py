"""``edgepipe ota``: key generation, manifest signing and verification for publishers.

The main ``edgepipe`` CLI calls :func:`add_ota_parser`; ``python -m edgepipe.ota``
offers the same commands on its own. Handlers return the exit code: 0 on
success, 2 when the input is refused (bad manifest, wrong hash, bad key...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._files import hash_file
from .errors import UpdateError
from .keys import TrustedKeys, load_private_key, load_public_key, write_keypair
from .manifest import (
    Version,
    build_signed,
    check_name,
    format_time,
    make_rollout,
    parse_duration,
    parse_json,
    sign_manifest,
    verify_manifest,
)

EXIT_OK = 0
EXIT_REFUSED = 2


def add_ota_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ota`` with ``keygen``, ``sign`` and ``verify`` on ``subparsers``.

    Each leaf parser sets ``func``, a callable taking the parsed namespace and
    returning the exit code. Returns the ``ota`` parser.
    """
    ota = subparsers.add_parser(
        "ota", help="sign and verify over-the-air model updates",
        description="Publisher tools for signed model manifests.",
    )
    ota.set_defaults(func=lambda args: _usage(ota))
    sub = ota.add_subparsers(dest="ota_command", metavar="COMMAND")

    kg = sub.add_parser("keygen", help="generate an Ed25519 signing key pair")
    kg.add_argument("--out", default="edgepipe-ota", metavar="PREFIX",
                    help="write PREFIX.key (private, mode 0600) and PREFIX.pub "
                         "(default: %(default)s)")
    kg.add_argument("--force", action="store_true", help="overwrite existing key files")
    kg.set_defaults(func=cmd_keygen)

    sg = sub.add_parser("sign", help="write a signed manifest for a model file")
    sg.add_argument("model", metavar="MODEL", help="the .tflite file to publish")
    sg.add_argument("--name", required=True, help="model name (letters, digits, . _ -)")
    sg.add_argument("--version", required=True, help="version: N, N.N, N.N.N or N.N.N.N")
    sg.add_argument("--key", action="append", required=True, metavar="K",
                    help="private key file; repeat to add signatures for a threshold")
    sg.add_argument("--rollout", metavar="PCT",
                    help="percentage of devices that install it (default 100)")
    sg.add_argument("--expires", default="30d", metavar="DURATION",
                    help="validity, e.g. 12h, 30d, 2w (default: %(default)s)")
    sg.add_argument("--variant", action="append", default=[], metavar="NAME[=PCT]",
                    help="A/B arm of the rollout; repeat; shares without PCT split the rest")
    sg.add_argument("--experiment", help="bucketing salt (default: the model name)")
    sg.add_argument("--min-edgepipe", metavar="V", help="minimum edgepipe version")
    sg.add_argument("--min-runtime", metavar="V", help="minimum LiteRT runtime version")
    sg.add_argument("--file", help="file name devices download, next to the manifest "
                                   "(default: MODEL's base name)")
    sg.add_argument("-o", "--output", help="manifest path (default: MODEL.manifest.json)")
    sg.add_argument("--force", action="store_true",
                    help="overwrite OUTPUT even if it holds a version not lower than this one")
    sg.set_defaults(func=cmd_sign)

    vf = sub.add_parser("verify", help="check a manifest and model as a device would")
    vf.add_argument("manifest", metavar="MANIFEST")
    vf.add_argument("model", metavar="MODEL")
    vf.add_argument("--key", action="append", required=True, metavar="PUB",
                    help="trusted public key file; repeat for several")
    vf.add_argument("--threshold", type=int, default=1,
                    help="distinct trusted signatures required (default: %(default)s)")
    vf.add_argument("--name", help="also require this model name")
    vf.set_defaults(func=cmd_verify)
    return ota


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_REFUSED


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def cmd_keygen(args: argparse.Namespace) -> int:
    """Generate a key pair; print the key id."""
    try:
        priv, pub, kid = write_keypair(args.out, overwrite=args.force)
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(f"private key: {priv}\npublic key:  {pub}\nkey id:      {kid}")
    return EXIT_OK




def cmd_sign(args: argparse.Namespace) -> int:
    """Hash MODEL and write a manifest signed by every ``--key``."""
    model = Path(args.model)
    out = Path(args.output) if args.output else model.with_name(model.name + ".manifest.json")
    try:
        check_name(args.name)
        version = Version(args.version)
        if out.exists() and not args.force:
            old = _published_version(out)
            if old is not None and version <= old:
                return _fail(f"{out} already publishes version {old}; versions only go up "
                             f"(use --force to overwrite)")
        keys = [load_private_key(k) for k in args.key]
        digest, size = hash_file(model)
        rollout = make_rollout(args.experiment or args.name, args.rollout, args.variant)
        signed = build_signed(
            name=args.name, version=version, sha256=digest, size=size,
            file=args.file or model.name, expires_in=parse_duration(args.expires),
            rollout=rollout, min_edgepipe_version=args.min_edgepipe,
            min_runtime_version=args.min_runtime,
        )
        data = sign_manifest(signed, keys)
        out.write_bytes(data)
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(f"signed {args.name} {version} ({size} bytes, sha256 {digest[:16]}…, "
          f"{len(keys)} signature(s), expires {signed['expires']}) -> {out}")
    return EXIT_OK


def _published_version(path: Path) -> Version | None:
    # Only the version is read, unverified: this guards the publisher against
    # a typo, it is not a security check (devices enforce that).
    try:
        doc = parse_json(path.read_bytes())
        return Version(doc["signed"]["version"])
    except (UpdateError, OSError, KeyError, TypeError):
        return None


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify MANIFEST's signatures and expiry, then MODEL's size and sha256."""
    try:
        trusted = TrustedKeys.from_keys([load_public_key(k) for k in args.key], args.threshold)
    except ValueError as e:
        return _fail(str(e))
    except UpdateError as e:
        return _fail(str(e))
    try:
        m = verify_manifest(Path(args.manifest).read_bytes(), trusted)
        if args.name is not None and m.name != args.name:
            return _fail(f"manifest is for {m.name!r}, expected {args.name!r}")
        digest, size = hash_file(Path(args.model))
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    if size != m.size:
        return _fail(f"model has {size} bytes, manifest says {m.size}")
    if digest != m.sha256:
        return _fail(f"model sha256 {digest} does not match the manifest's {m.sha256}")
    print(f"ok: {m.name} {m.version}, {m.size} bytes, {len(m.key_ids)} trusted signature(s), "
          f"expires {format_time(m.expires)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m edgepipe.ota``."""
    # prog "edgepipe" so usage lines read "edgepipe ota sign ...", as in the main CLI.
    parser = argparse.ArgumentParser(prog="edgepipe",
                                     description="edgepipe OTA publisher tools")
    sub = parser.add_subparsers(dest="command")
    add_ota_parser(sub)
    args = parser.parse_args(["ota", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


__all__ = ["add_ota_parser", "cmd_keygen", "cmd_sign", "cmd_verify", "main"]
