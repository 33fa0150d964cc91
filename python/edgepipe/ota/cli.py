"""``edgepipe ota``: the TUF repository tools (publisher) and the device updater.

Publisher::

    edgepipe ota repo init DIR [--threshold ROLE=N] [--key ROLE=PEM] [--expires ROLE=DUR]
    edgepipe ota repo add DIR MODEL --name N --version V [--custom JSON]
    edgepipe ota repo add DIR MODEL --target PATH        # e.g. a variant's model file
    edgepipe ota repo publish DIR
    edgepipe ota repo timestamp DIR
    edgepipe ota repo rotate DIR [--role ROLE] [--threshold T] [--key PEM]

Device::

    edgepipe ota update URL --store DIR --root ROOT.json --name N
    edgepipe ota status --store DIR --name N

``update`` and ``status`` print one JSON object. The main ``edgepipe`` CLI calls
:func:`add_ota_parser`; ``python -m edgepipe.ota`` offers the same commands.
Handlers return the exit code: 0 on success (installed, up to date, not in
the rollout), 2 when something is refused (a typed error, printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from datetime import timedelta
from typing import Any

from .errors import UpdateError

EXIT_OK = 0
EXIT_REFUSED = 2


def add_ota_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``ota`` (``repo …``, ``update``, ``status``) on ``subparsers``.

    Each leaf parser sets ``func``, a callable taking the parsed namespace and
    returning the exit code. Returns the ``ota`` parser.
    """
    ota = subparsers.add_parser(
        "ota",
        help="over-the-air model updates with TUF (publish, update)",
        description="Publish models in a TUF repository and update devices from it.",
    )
    ota.set_defaults(func=lambda args: _usage(ota))
    sub = ota.add_subparsers(dest="ota_command", metavar="COMMAND")

    repo = sub.add_parser("repo", help="manage a TUF repository of models (publisher)")
    repo.set_defaults(func=lambda args: _usage(repo))
    rsub = repo.add_subparsers(dest="repo_command", metavar="COMMAND")

    init = rsub.add_parser("init", help="create keys and signed root/targets/snapshot/timestamp")
    init.add_argument("dir", metavar="DIR")
    init.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="ROLE=N",
        help="signatures a role needs (default 1 each); keys are generated",
    )
    init.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="ROLE=PEM",
        help="use this private key file for ROLE instead of a new one",
    )
    init.add_argument(
        "--expires",
        action="append",
        default=[],
        metavar="ROLE=DURATION",
        help="validity of ROLE's metadata, e.g. timestamp=1d, root=365d",
    )
    init.set_defaults(func=cmd_repo_init)

    add = rsub.add_parser("add", help="stage a model file as target NAME/VERSION.tflite")
    add.add_argument("dir", metavar="DIR")
    add.add_argument("model", metavar="MODEL")
    add.add_argument("--name", help="model name")
    add.add_argument("--version", help="model version: N, N.N, N.N.N or N.N.N.N")
    add.add_argument(
        "--target",
        help="explicit target path instead of NAME/VERSION.tflite (e.g. a variant's model)",
    )
    add.add_argument(
        "--custom",
        metavar="JSON",
        help="edgepipe fields: rollout, experiment, variants, min_runtime, ...",
    )
    add.set_defaults(func=cmd_repo_add)

    pub = rsub.add_parser("publish", help="sign staged targets, new snapshot and timestamp")
    pub.add_argument("dir", metavar="DIR")
    pub.add_argument("--expires", action="append", default=[], metavar="ROLE=DURATION")
    pub.set_defaults(func=cmd_repo_publish)

    ts = rsub.add_parser("timestamp", help="re-sign the timestamp with a fresh expiry")
    ts.add_argument("dir", metavar="DIR")
    ts.add_argument("--expires", action="append", default=[], metavar="ROLE=DURATION")
    ts.set_defaults(func=cmd_repo_timestamp)

    rot = rsub.add_parser("rotate", help="replace a role's keys (new root version)")
    rot.add_argument("dir", metavar="DIR")
    rot.add_argument("--role", default="root", help="role whose keys change (default root)")
    rot.add_argument("--threshold", type=int, help="new threshold of the role")
    rot.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PEM",
        help="new private key file (default: generate)",
    )
    rot.add_argument("--keep-old", action="store_true", help="add keys without revoking")
    rot.set_defaults(func=cmd_repo_rotate)

    up = sub.add_parser("update", help="update a device's model store from a repository")
    up.add_argument("url", metavar="URL", help="repository base URL (metadata/ and targets/)")
    up.add_argument("--store", required=True, metavar="DIR", help="the device's model store")
    up.add_argument(
        "--root",
        required=True,
        metavar="ROOT.json",
        help="trusted root metadata shipped with the app",
    )
    up.add_argument("--name", required=True, help="model name")
    up.add_argument(
        "--deadline",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds one fetch may take in all (default %(default)s)",
    )
    up.add_argument(
        "--max-bytes",
        type=int,
        default=2 << 30,
        help="largest model accepted (default %(default)s)",
    )
    up.add_argument("--device-id", help="bucketing id (default: the store's random id)")
    up.set_defaults(func=cmd_update)

    st = sub.add_parser("status", help="print a device store's state as JSON")
    st.add_argument("--store", required=True, metavar="DIR")
    st.add_argument("--name", required=True)
    st.set_defaults(func=cmd_status)
    return ota


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The board's CLI convention: same as :func:`add_ota_parser`, returning None."""
    add_ota_parser(subparsers)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_REFUSED


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        role, sep, value = item.partition("=")
        if not sep or not role or not value:
            raise UpdateError(f"{what} {item!r}: use ROLE=VALUE")
        out.append((role.strip(), value.strip()))
    return out


def _expiry(items: list[str]) -> dict[str, timedelta]:
    from .repo import ROLES, parse_duration

    out = {}
    for role, value in _pairs(items, "--expires"):
        if role not in ROLES:
            raise UpdateError(f"unknown role {role!r} in --expires")
        out[role] = parse_duration(value)
    return out


def _regular_file(path: str, what: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        raise UpdateError(f"cannot read {what} {path}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise UpdateError(f"{what} {path} is not a regular file")
    return path


def cmd_repo_init(args: argparse.Namespace) -> int:
    from .repo import Repository

    try:
        thresholds: dict[str, int] = {}
        for role, value in _pairs(args.threshold, "--threshold"):
            if not value.isdigit() or not 1 <= int(value) <= 16:
                raise UpdateError(f"--threshold {role}={value}: use a number from 1 to 16")
            thresholds[role] = int(value)
        keys: dict[str, list[str]] = {}
        for role, path in _pairs(args.key, "--key"):
            keys.setdefault(role, []).append(_regular_file(path, "key"))
        repo = Repository.init(
            args.dir, thresholds=thresholds, key_files=keys, expiry=_expiry(args.expires)
        )
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(
        f"initialized TUF repository {repo.dir}; serve {repo.dir / 'public'}; "
        f"give devices {repo.meta_dir / '1.root.json'} as their trusted root"
    )
    return EXIT_OK


def cmd_repo_add(args: argparse.Namespace) -> int:
    from .repo import Repository, read_custom

    try:
        model = _regular_file(args.model, "model")
        custom = read_custom(args.custom)
        repo = Repository(args.dir)
        if args.target:
            path = repo.add_file(model, args.target, custom)
        else:
            if not args.name or not args.version:
                raise UpdateError("give --name and --version (or --target)")
            path = repo.add(model, args.name, args.version, custom)
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(f"staged target {path}; run `edgepipe ota repo publish {args.dir}`")
    return EXIT_OK


def cmd_repo_publish(args: argparse.Namespace) -> int:
    from .repo import Repository

    try:
        versions = Repository(args.dir, expiry=_expiry(args.expires)).publish()
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(json.dumps({"published": versions}, sort_keys=True))
    return EXIT_OK


def cmd_repo_timestamp(args: argparse.Namespace) -> int:
    from .repo import Repository

    try:
        v = Repository(args.dir, expiry=_expiry(args.expires)).timestamp()
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(json.dumps({"timestamp": v}))
    return EXIT_OK


def cmd_repo_rotate(args: argparse.Namespace) -> int:
    from .repo import Repository

    try:
        files = [_regular_file(k, "key") for k in args.key]
        out = Repository(args.dir).rotate(
            args.role, threshold=args.threshold, keep_old=args.keep_old, key_files=files
        )
    except (UpdateError, OSError) as e:
        return _fail(str(e))
    print(json.dumps(out, sort_keys=True))
    return EXIT_OK


def _refusal(e: UpdateError) -> dict[str, Any]:
    return {
        "status": "refused",
        "error": getattr(e, "kind", "update_error"),
        "type": type(e).__name__,
        "reason": str(e),
    }


def cmd_update(args: argparse.Namespace) -> int:
    from .fetcher import BoundedFetcher
    from .safedir import read_small_file
    from .store import ModelStore

    try:
        root = read_small_file(args.root, 512_000, "root metadata")
        fetcher = BoundedFetcher(deadline_s=args.deadline, max_bytes=args.max_bytes)
        with ModelStore(
            args.store,
            name=args.name,
            root=root,
            fetcher=fetcher,
            max_model_bytes=args.max_bytes,
            device_id=args.device_id,
        ) as store:
            result = store.update(args.url)
    except UpdateError as e:
        print(json.dumps(_refusal(e), sort_keys=True))
        return _fail(str(e))
    except ValueError as e:
        print(json.dumps({"status": "refused", "error": "bad_argument", "reason": str(e)}))
        return _fail(str(e))
    print(json.dumps(result.to_json(), sort_keys=True))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .store import ModelStore

    try:
        with ModelStore(args.store, name=args.name) as store:
            print(json.dumps(store.status(), sort_keys=True, default=str))
    except UpdateError as e:
        print(json.dumps(_refusal(e), sort_keys=True))
        return _fail(str(e))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m edgepipe.ota``."""
    parser = argparse.ArgumentParser(prog="edgepipe", description="edgepipe OTA tools")
    sub = parser.add_subparsers(dest="command")
    add_ota_parser(sub)
    args = parser.parse_args(["ota", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


__all__ = ["add_ota_parser", "main", "register"]
