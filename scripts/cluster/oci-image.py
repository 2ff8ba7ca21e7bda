#!/usr/bin/env python3
"""Write an OCI image archive (an image layout in a tar) from root filesystems.

No registry and no container engine: each --layer is a directory (or a tar
file) that becomes one uncompressed layer, in order. The archive names the
image with every --tag (the `io.containerd.image.name` annotation that
`ctr images import` reads), so one import gives all the names.

    oci-image.py -o shop.tar --tag docker.io/library/gameday-shop:0.1.0 \
        --layer ROOTFS --user 10001:10001 --env SHOP_BIND=0.0.0.0 \
        --cmd sh -c 'echo give a service >&2; exit 64'

Used by scripts/cluster.sh images; standard library only.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def layer_tar(source, workdir, index):
    """A directory becomes a tar (GNU tar: numeric owners, sorted, fixed mtime
    for nothing but the order); a tar file is used as it is."""
    if os.path.isfile(source):
        return source
    out = os.path.join(workdir, f"layer{index}.tar")
    subprocess.run(
        ["tar", "--numeric-owner", "--sort=name", "--xattrs", "-C", source,
         "-cf", out, "."],
        check=True,
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--tag", action="append", required=True,
                        help="full image name, e.g. docker.io/library/x:1 (repeatable)")
    parser.add_argument("--layer", action="append", required=True,
                        help="a directory or a tar file (repeatable, bottom first)")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--user", default="")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--entrypoint", nargs="*", default=None)
    parser.add_argument("--cmd", nargs=argparse.REMAINDER, default=None,
                        help="the rest of the line is the command")
    parser.add_argument("--expose", action="append", default=[])
    parser.add_argument("--label", action="append", default=[])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as tmp:
        blobs = os.path.join(tmp, "layout", "blobs", "sha256")
        os.makedirs(blobs)

        def add_blob_bytes(data):
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(blobs, digest), "wb") as f:
                f.write(data)
            return digest, len(data)

        layers, diff_ids = [], []
        for i, source in enumerate(args.layer):
            path = layer_tar(source, tmp, i)
            digest = sha256_file(path)
            size = os.path.getsize(path)
            target = os.path.join(blobs, digest)
            if path.startswith(tmp):
                os.rename(path, target)
            else:
                shutil.copyfile(path, target)
            layers.append({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{digest}",
                "size": size,
            })
            diff_ids.append(f"sha256:{digest}")

        env = [DEFAULT_PATH] if not any(e.startswith("PATH=") for e in args.env) else []
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": env + args.env},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "scripts/cluster/oci-image.py"} for _ in layers],
        }
        c = config["config"]
        if args.user:
            c["User"] = args.user
        if args.workdir:
            c["WorkingDir"] = args.workdir
        if args.entrypoint:
            c["Entrypoint"] = args.entrypoint
        if args.cmd:
            c["Cmd"] = args.cmd
        if args.expose:
            c["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in args.expose}
        if args.label:
            c["Labels"] = dict(l.split("=", 1) for l in args.label)
        config_digest, config_size = add_blob_bytes(
            json.dumps(config, sort_keys=True).encode())

        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_digest}",
                "size": config_size,
            },
            "layers": layers,
        }
        manifest_digest, manifest_size = add_blob_bytes(
            json.dumps(manifest, sort_keys=True).encode())

        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{manifest_digest}",
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": tag,
                        "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1],
                    },
                }
                for tag in args.tag
            ],
        }
        layout = os.path.join(tmp, "layout")
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump(index, f, sort_keys=True)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

        partial = args.output + ".part"
        with tarfile.open(partial, "w") as tar:
            for name in ["oci-layout", "index.json"]:
                tar.add(os.path.join(layout, name), arcname=name)
            tar.add(os.path.join(layout, "blobs"), arcname="blobs")
        os.replace(partial, args.output)
    print(f"{args.output}: {', '.join(args.tag)} sha256:{manifest_digest}")


if __name__ == "__main__":
    sys.exit(main())
