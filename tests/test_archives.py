"""Archive extraction: real tar and zip files, good and hostile, and archives fetched over loopback HTTP.

Every archive is built here with :mod:`tarfile` or :mod:`zipfile` under
``tmp_path``; hostile ones hold exactly the members an attacker would write
(``../evil``, absolute names, links out of the target, devices, FIFOs).
Each refusal is pinned to its message, and the tests check that nothing at
all was created in or beside the target.  The end-to-end tests serve the
archives from the loopback server of ``test_fetch.py`` with a manifest that
pins their checksums.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import zipfile

import pytest
from test_fetch import MANIFEST, NS, ReleaseServer, listing

import xcoact.fetch as fetch
from xcoact.errors import ArchiveError, DownloadError, OutputError, ParameterError, UnsafeArchiveError, XcoactError
from xcoact.fetch import fetch_neurosynth, git_blob_sha1, safe_extract

TAIL = ("Only relative paths that stay inside the target directory, and links that resolve inside it, are "
        "extracted.")

TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}
SUFFIXES = [*TAR_MODES, ".zip"]


# ----------------------------------------------------------------------------- builders

def build_tar(path, members, suffix=".tar"):
    """Write a tar; ``members`` are ``(name, kind, payload)`` with kind file/exe/dir/symlink/hardlink/fifo/chr/blk."""
    with tarfile.open(path, TAR_MODES[suffix], format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            data = None
            if kind in ("file", "exe"):
                info.size = len(payload)
                info.mode = 0o4755 if kind == "exe" else 0o644  # setuid on purpose: it must not survive
                data = io.BytesIO(payload)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o500  # read-only in the archive
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind in ("chr", "blk"):
                info.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                info.devmajor, info.devminor = 1, 3
            else:
                raise AssertionError(kind)
            tar.addfile(info, data)
    return str(path)


def build_zip(path, members):
    """Write a zip; kinds: file, exe, dir, symlink (Unix mode in external_attr, target as content), fifo."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 9, 13, 12, 26, 40))
            info.create_system = 3  # Unix, so the mode bits below are meaningful
            info.compress_type = zipfile.ZIP_DEFLATED
            modes = {"file": stat.S_IFREG | 0o644, "exe": stat.S_IFREG | 0o4755, "dir": stat.S_IFDIR | 0o755,
                     "symlink": stat.S_IFLNK | 0o777, "fifo": stat.S_IFIFO | 0o644}
            info.external_attr = modes[kind] << 16
            if kind == "dir":
                info.external_attr |= 0x10  # the MS-DOS directory flag
            data = payload.encode() if kind == "symlink" else (payload if kind in ("file", "exe") else b"")
            zf.writestr(info, data)
    return str(path)


def build(path, members, suffix):
    path = str(path) + suffix
    return build_zip(path, members) if suffix == ".zip" else build_tar(path, members, suffix)


README = b"coactivation maps, see below\n"
DATA = bytes(range(256)) * 40 + b"\x00\xff"
SCRIPT = b"#!/bin/sh\necho hi\n"
TSV = "id\tx\ty\tz\n1\t-40\t20\t28\n2\t0\t20\t28\n".encode()


def good_members(suffix):
    """A small tree: nested directories, an empty file and directory, binary data, an executable, links inside."""
    members = [
        ("./", "dir", None),  # the archive's root, as `tar -C dir .` writes it: the target itself
        ("maps/", "dir", None),
        ("maps/readme.txt", "file", README),
        ("maps/sub/data.bin", "file", DATA),
        ("maps/sub/empty.txt", "file", b""),
        ("maps/empty-dir/", "dir", None),
        ("maps/run.sh", "exe", SCRIPT),
        ("./table.tsv", "file", TSV),
        ("maps/readme-link", "symlink", "readme.txt"),
        ("maps/sub/up-link", "symlink", "../readme.txt"),
    ]
    if suffix != ".zip":
        members.append(("maps/readme-hard", "hardlink", "maps/readme.txt"))
    return members


def tree(root) -> dict[str, str]:
    """Every path under ``root`` (relative) -> what it is: a file's bytes' sha256, 'dir', or 'link -> target'."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link -> " + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No mirror or cache from the environment; retries without the real backoff."""
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)
    monkeypatch.setenv(fetch.ENV_DATA, str(tmp_path / "default-cache"))
    monkeypatch.setattr(fetch, "_BACKOFF_S", 0.01)


# ----------------------------------------------------------------------------- good archives

@pytest.mark.parametrize("suffix", SUFFIXES)
def test_good_archive_is_extracted_byte_identical(tmp_path, suffix):
    (tmp_path / "in").mkdir()
    archive = build(tmp_path / "in" / "maps", good_members(suffix), suffix)
    target = tmp_path / "out" / "dest"  # the parent does not exist yet: it is created

    paths = safe_extract(archive, target)

    expected = ["maps", "maps/readme.txt", "maps/sub/data.bin", "maps/sub/empty.txt", "maps/empty-dir", "maps/run.sh",
                "table.tsv", "maps/readme-link", "maps/sub/up-link"] + (["maps/readme-hard"] if suffix != ".zip" else [])
    assert paths == [os.path.join(target, *p.split("/")) for p in expected]
    for rel, content in [("maps/readme.txt", README), ("maps/sub/data.bin", DATA), ("maps/sub/empty.txt", b""),
                         ("maps/run.sh", SCRIPT), ("table.tsv", TSV)]:
        assert (target / rel).read_bytes() == content, rel
    assert (target / "maps" / "empty-dir").is_dir() and not list((target / "maps" / "empty-dir").iterdir())
    assert os.readlink(target / "maps" / "readme-link") == "readme.txt"
    assert os.readlink(target / "maps" / "sub" / "up-link") == "../readme.txt"
    assert (target / "maps" / "sub" / "up-link").read_bytes() == README  # resolves inside, to the real file
    if suffix != ".zip":
        assert os.path.samefile(target / "maps" / "readme-hard", target / "maps" / "readme.txt")
    else:
        assert not (target / "maps" / "readme-hard").exists()
    # modes: the execute bit survives, setuid does not; a read-only directory in the archive stays writable here
    run = (target / "maps" / "run.sh").stat().st_mode
    assert run & stat.S_IXUSR and not run & (stat.S_ISUID | stat.S_ISGID)
    assert not (target / "maps" / "readme.txt").stat().st_mode & stat.S_IXUSR
    assert all(d.stat().st_mode & stat.S_IWUSR for d in (target, target / "maps", target / "maps" / "sub"))
    if suffix != ".zip":
        assert (target / "maps" / "readme.txt").stat().st_mtime == 1_600_000_000
    # the temporary tree was renamed into place: nothing else beside the target
    assert listing(tmp_path / "out") == ["dest"] and listing(tmp_path / "in") == [os.path.basename(archive)]


def test_extraction_matches_what_tarfile_itself_extracts(tmp_path):
    """An independent oracle for the good case: the same tree as tarfile's own extraction (with its data filter)."""
    archive = build(tmp_path / "maps", good_members(".tar.gz"), ".tar.gz")
    safe_extract(archive, tmp_path / "ours")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "theirs", filter="data")
        else:  # pragma: no cover - Python 3.11 before 3.11.4; this archive is known to be safe
            tar.extractall(tmp_path / "theirs")
    ours, theirs = tree(tmp_path / "ours"), tree(tmp_path / "theirs")
    for folder in (tmp_path / "theirs", tmp_path / "theirs" / "maps"):  # tarfile kept the read-only modes
        os.chmod(folder, 0o755)
    assert ours == theirs and len(ours) == 11


def test_existing_target_needs_replace(tmp_path):
    archive = build(tmp_path / "maps", good_members(".tar"), ".tar")
    target = tmp_path / "dest"
    target.mkdir()
    safe_extract(archive, target)  # an empty directory is fine
    assert (target / "maps" / "readme.txt").read_bytes() == README
    (target / "stale.txt").write_text("from before")
    with pytest.raises(OutputError) as info:
        safe_extract(archive, target)
    assert str(info.value) == (
        f"{target}: the directory exists and is not empty; pass replace=True to replace it with the contents of "
        f"{archive}, or choose a new target_dir.")
    other = build_zip(tmp_path / "other.zip", [("only.txt", "file", b"new")])
    assert safe_extract(other, target, replace=True) == [str(target / "only.txt")]
    assert tree(target) == {"only.txt": hashlib.sha256(b"new").hexdigest()}
    assert sorted(os.listdir(tmp_path)) == ["dest", "maps.tar", "other.zip"]  # the old tree is gone, not set aside
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match=r"a-file: exists and is not a directory"):
        safe_extract(archive, tmp_path / "a-file")


# ----------------------------------------------------------------------------- hostile archives

OK = ("ok.txt", "file", b"harmless, and first: it must not be written either\n")
LOOP = "goes through more than 40 links (a loop)"

# id -> (suffix, members, what the message says about them)
ATTACKS = {
    "dotdot": (".tar", [OK, ("../evil", "file", b"x")],
               "member '../evil' has '..' components that lead outside the target directory"),
    "absolute": (".tar.gz", [OK, ("/abs/evil", "file", b"x")], "member '/abs/evil' is an absolute path"),
    "dotdot-inside-path": (".tar.bz2", [OK, ("a/../../evil", "file", b"x")],
                           "member 'a/../../evil' has '..' components that lead outside the target directory"),
    "symlink-absolute": (".tar.xz", [OK, ("passwd", "symlink", "/etc/passwd")],
                         "member 'passwd' is a symbolic link to '/etc/passwd', an absolute path outside the target "
                         "directory"),
    "symlink-relative": (".tgz", [OK, ("out", "symlink", "../outside")],
                         "member 'out' is a symbolic link to '../outside', which resolves outside the target directory"),
    # d/up -> .. stays inside, but x -> d/up/.. climbs out once d/up is followed: not a lexical check
    "symlink-through-symlink": (".tar", [OK, ("d/", "dir", None), ("d/up", "symlink", ".."), ("x", "symlink", "d/up/..")],
                                "member 'x' is a symbolic link to 'd/up/..', which resolves outside the target "
                                "directory"),
    # the same on a case-insensitive file system (macOS, Windows), where d/up is the link d/Up
    "symlink-case-folded": (".tar", [OK, ("d/", "dir", None), ("d/Up", "symlink", ".."), ("x", "symlink", "d/up/..")],
                            "member 'x' is a symbolic link to 'd/up/..', which resolves outside the target directory"),
    # the two-step attack: a link out of the target, then a file written through it
    "write-through-symlink": (".tar", [OK, ("lnk", "symlink", "../outside"), ("lnk/evil", "file", b"x")],
                              "member 'lnk' is a symbolic link to '../outside', which resolves outside the target "
                              "directory; member 'lnk/evil' lies under 'lnk', a symbolic link in the archive (it would "
                              "be written wherever the link points)"),
    "symlink-loop": (".tar", [OK, ("a", "symlink", "b"), ("b", "symlink", "a")],
                     f"member 'a' is a symbolic link to 'b', which {LOOP}; member 'b' is a symbolic link to 'a', "
                     f"which {LOOP}"),
    "hardlink-relative": (".tar", [OK, ("hard", "hardlink", "../outside")],
                          "member 'hard' is a hard link to '../outside', which resolves outside the target directory"),
    "hardlink-absolute": (".tar", [OK, ("hard", "hardlink", "/etc/passwd")],
                          "member 'hard' is a hard link to '/etc/passwd', an absolute path outside the target "
                          "directory"),
    "hardlink-missing": (".tar", [OK, ("hard", "hardlink", "later.txt"), ("later.txt", "file", b"x")],
                         "member 'hard' is a hard link to 'later.txt', which is not a regular file earlier in the "
                         "archive"),
    "fifo": (".tar", [OK, ("pipe", "fifo", None)],
             "member 'pipe' is a FIFO; only regular files, directories and links are extracted"),
    "char-device": (".tar", [OK, ("dev/null", "chr", None)],
                    "member 'dev/null' is a character device; only regular files, directories and links are extracted"),
    "block-device": (".tar", [OK, ("sda", "blk", None)],
                     "member 'sda' is a block device; only regular files, directories and links are extracted"),
    "duplicate": (".tar", [OK, ("ok.txt", "file", b"replaced")],
                  "member 'ok.txt' appears more than once in the archive (a later copy would replace the earlier one)"),
    "windows-path": (".tar", [OK, ("..\\evil", "file", b"x")],
                     "member '..\\\\evil' is a Windows path (a backslash or a drive letter); only relative "
                     "'/'-separated paths are extracted"),
    "zip-dotdot": (".zip", [OK, ("../evil", "file", b"x")],
                   "member '../evil' has '..' components that lead outside the target directory"),
    "zip-dotdot-inside-path": (".zip", [OK, ("a/../../evil", "file", b"x")],
                               "member 'a/../../evil' has '..' components that lead outside the target directory"),
    "zip-absolute": (".zip", [OK, ("/abs/evil", "file", b"x")], "member '/abs/evil' is an absolute path"),
    "zip-drive": (".zip", [OK, ("C:/evil", "file", b"x")],
                  "member 'C:/evil' is a Windows path (a backslash or a drive letter); only relative '/'-separated "
                  "paths are extracted"),
    "zip-symlink": (".zip", [OK, ("out", "symlink", "../outside")],
                    "member 'out' is a symbolic link to '../outside', which resolves outside the target directory"),
    "zip-fifo": (".zip", [OK, ("pipe", "fifo", None)],
                 "member 'pipe' is a FIFO; only regular files, directories and links are extracted"),
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_hostile_archive_is_refused_and_nothing_is_written(tmp_path, case):
    suffix, members, expected = ATTACKS[case]
    (tmp_path / "in").mkdir()
    archive = build(tmp_path / "in" / case, members, suffix)
    if suffix == ".zip":  # zipfile keeps the names exactly as given (it only sanitises on its own extraction)
        with zipfile.ZipFile(archive) as zf:
            assert [i.filename for i in zf.infolist()] == [m[0] for m in members]
    target = tmp_path / "out" / "dest"

    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)

    err = info.value
    assert isinstance(err, ArchiveError) and isinstance(err, XcoactError) and isinstance(err, OSError)
    assert str(err) == f"{archive}: refused, nothing was extracted: {expected}. {TAIL}"
    # nothing in or beside the target (not even its parent), nothing outside, nothing at the absolute name
    assert listing(tmp_path) == ["in"] and listing(tmp_path / "in") == [os.path.basename(archive)]
    assert not os.path.lexists("/abs/evil") and not os.path.lexists(tmp_path / "outside")


def test_hostile_archive_leaves_an_existing_target_untouched(tmp_path):
    target = tmp_path / "dest"
    target.mkdir()
    (target / "keep.txt").write_bytes(b"mine")
    archive = build(tmp_path / "evil", [OK, ("a/../../evil", "file", b"x")], ".tar")
    with pytest.raises(UnsafeArchiveError, match=r"member 'a/\.\./\.\./evil' has '\.\.' components"):
        safe_extract(archive, target, replace=True)
    assert tree(target) == {"keep.txt": hashlib.sha256(b"mine").hexdigest()}
    assert sorted(os.listdir(tmp_path)) == ["dest", "evil.tar"]


def test_a_naive_extractor_would_escape(tmp_path):
    """The hostile archives are real: tarfile without an extraction filter writes outside the target."""
    archive = build(tmp_path / "evil", [("../evil", "file", b"x")], ".tar")
    (tmp_path / "naive" / "dest").mkdir(parents=True)
    with tarfile.open(archive) as tar:
        member = tar.getmember("../evil")
        tar.extract(member, tmp_path / "naive" / "dest", set_attrs=False, **(
            {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
    assert (tmp_path / "naive" / "evil").read_bytes() == b"x"  # beside the target, not in it
    assert listing(tmp_path / "naive" / "dest") == []
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "ours" / "dest")
    assert not (tmp_path / "ours").exists()


def test_every_refused_member_is_named_up_to_ten(tmp_path):
    members = [OK] + [(f"../evil{i}", "file", b"x") for i in range(13)]
    archive = build(tmp_path / "many", members, ".tar")
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, tmp_path / "dest")
    msg = str(info.value)
    assert [int(n) for n in re.findall(r"member '\.\./evil(\d+)'", msg)] == list(range(10))
    assert "; and 3 more. Only relative paths" in msg
    assert sorted(os.listdir(tmp_path)) == ["many.tar"]


# ----------------------------------------------------------------------------- damaged archives, interruptions

def test_unreadable_archive_is_an_archive_error(tmp_path):
    bad = tmp_path / "junk.tar.gz"
    bad.write_bytes(b"this is not gzip data" * 10)
    with pytest.raises(ArchiveError) as info:
        safe_extract(bad, tmp_path / "dest")
    assert not isinstance(info.value, UnsafeArchiveError)
    assert str(info.value).startswith(f"{bad}: cannot be read as a .tar.gz archive (ReadError: ")
    assert str(info.value).endswith("; nothing was extracted.")
    # a zip is not a tar just because it is named so
    zipped = build_zip(tmp_path / "z.zip", [OK])
    shutil.copy(zipped, tmp_path / "z.tar")
    with pytest.raises(ArchiveError, match=r"z\.tar: cannot be read as a \.tar archive"):
        safe_extract(tmp_path / "z.tar", tmp_path / "dest")
    assert sorted(os.listdir(tmp_path)) == ["junk.tar.gz", "z.tar", "z.zip"]


def test_damaged_member_midway_leaves_no_partial_tree(tmp_path):
    first, second = b"first member, intact\n" * 50, bytes(range(256)) * 64
    path = build_zip(tmp_path / "damaged.zip", [("a/first.txt", "file", first), ("a/second.bin", "file", second)])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("a/second.bin")
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    raw = bytearray(open(path, "rb").read())
    raw[offset] ^= 0xFF  # the central directory is intact: the checks pass, the second member's data is bad
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ArchiveError) as info:
        safe_extract(path, tmp_path / "out" / "dest")
    msg = str(info.value)
    assert msg.startswith(f"{path}: damaged (") and msg.endswith("); nothing was extracted.")
    assert not isinstance(info.value, UnsafeArchiveError)
    assert listing(tmp_path / "out") == []  # the first member was written to the temporary tree, now removed


def test_interrupted_extraction_leaves_no_partial_tree(tmp_path, monkeypatch):
    archive = build(tmp_path / "maps", good_members(".tar.gz"), ".tar.gz")
    target = tmp_path / "out" / "dest"
    real, calls = fetch._copy_member, []

    def interrupt_on_second(src, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(src, dest)

    monkeypatch.setattr(fetch, "_copy_member", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, target)
    assert len(calls) == 2 and ".extracting" in calls[0]  # written beside the target, under a temporary name
    assert listing(tmp_path / "out") == []

    # the same while replacing an existing tree: the old tree is still there, whole
    target.mkdir()
    (target / "keep.txt").write_bytes(b"old")
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, target, replace=True)
    assert listing(tmp_path / "out") == ["dest"] and tree(target) == {"keep.txt": hashlib.sha256(b"old").hexdigest()}


def test_unsupported_names_and_arguments(tmp_path):
    for name in ("coordinates.tsv.gz", "features.npz", "x.gz", "x.rar", ".tar"):
        with pytest.raises(ParameterError) as info:
            safe_extract(tmp_path / name, tmp_path / "dest")
        assert str(info.value) == (
            f"archive={str(tmp_path / name)!r} is not an archive xcoact extracts; expected a name ending in "
            ".tar.gz, .tgz, .tar.bz2, .tar.xz, .tar, .zip.")
    archive = build(tmp_path / "maps", good_members(".zip"), ".zip")
    with pytest.raises(ParameterError, match=r"replace='yes' is not valid; expected True or False"):
        safe_extract(archive, tmp_path / "dest", replace="yes")
    with pytest.raises(ArchiveError, match=r"missing\.zip: cannot be read as a \.zip archive \(FileNotFoundError"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "dest")
    assert sorted(os.listdir(tmp_path)) == ["maps.zip"]


# ----------------------------------------------------------------------------- archives in a release

ARCHIVE = "data-neurosynth_version-7_images.tar.gz"
VOCAB_ZIP = "data-neurosynth_version-7_vocab-terms_extras.zip"


def manifest_with(path, archives: dict[str, bytes]):
    """The fixture manifest plus one row per archive, pinned by size, git blob SHA-1 and sha256."""
    with open(MANIFEST) as fh:
        text = fh.read()
    for name, data in archives.items():
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        text += f"neurosynth/neurosynth-data\t{name}\t{len(data)}\t{blob}\t{hashlib.sha256(data).hexdigest()}\n"
    path.write_text(text)
    return str(path)


def archive_bytes(tmp_path, name, members, suffix=".tar.gz"):
    return open(build(tmp_path / name, members, suffix), "rb").read()


@pytest.fixture
def server():
    srv = ReleaseServer()
    try:
        yield srv
    finally:
        srv.close()


def test_fetched_archive_is_verified_extracted_once_and_again_when_it_changes(server, tmp_path, monkeypatch):
    first = archive_bytes(tmp_path, "v1", good_members(".tar.gz"))
    server.files[f"/{NS}/{ARCHIVE}"] = first
    manifest = manifest_with(tmp_path / "m1.tsv", {ARCHIVE: first})
    cache = tmp_path / "cache"
    directory = cache / NS
    extracted = directory / "data-neurosynth_version-7_images"

    release = fetch_neurosynth(7, cache, base_url=server.url, manifest=manifest, vocab=None, convert=False)

    assert dict(release.files) == {"coordinates": str(directory / "data-neurosynth_version-7_coordinates.tsv.gz"),
                                   "metadata": str(directory / "data-neurosynth_version-7_metadata.tsv.gz"),
                                   "images": str(extracted)}
    assert (directory / ARCHIVE).read_bytes() == first  # the verified archive stays, for the next call's check
    assert (extracted / "maps" / "sub" / "data.bin").read_bytes() == DATA
    assert (extracted / "table.tsv").read_bytes() == TSV
    assert tree(extracted) == tree(_reference_tree(tmp_path, "v1.tar.gz"))
    assert [r["status"] for r in server.requests(ARCHIVE)] == [200]
    assert ".data-neurosynth_version-7_images.extracted.json" in listing(directory)
    assert not [n for n in listing(directory) if n.endswith((".extracting", ".old", ".part"))]

    # the next call downloads nothing and extracts nothing
    def no_extract(*args, **kwargs):
        raise AssertionError("extracted again")

    real = fetch.safe_extract
    monkeypatch.setattr(fetch, "safe_extract", no_extract)
    n = len(server.log)
    again = fetch_neurosynth(7, cache, base_url=server.url, manifest=manifest, vocab=None, convert=False)
    assert dict(again.files) == dict(release.files) and len(server.log) == n
    monkeypatch.setattr(fetch, "safe_extract", real)

    # the tree removed by hand: extracted again from the cached archive, nothing downloaded
    shutil.rmtree(extracted)
    fetch_neurosynth(7, cache, base_url=server.url, manifest=manifest, vocab=None, convert=False)
    assert len(server.log) == n and (extracted / "maps" / "readme.txt").read_bytes() == README

    # a new archive (a new manifest pins it): downloaded, and its tree replaces the old one; a temporary tree
    # left by a process killed while extracting is swept away
    second = archive_bytes(tmp_path, "v2", [("maps/readme.txt", "file", b"version 2\n"), ("new.txt", "file", b"new")])
    server.files[f"/{NS}/{ARCHIVE}"] = second
    stale = directory / ".data-neurosynth_version-7_images.0123456789ab.extracting"
    (stale / "maps").mkdir(parents=True)
    (stale / "maps" / "half.bin").write_bytes(b"\0" * 10)
    fetch_neurosynth(7, cache, base_url=server.url, manifest=manifest_with(tmp_path / "m2.tsv", {ARCHIVE: second}),
                     vocab=None, convert=False)
    assert [r["status"] for r in server.requests(ARCHIVE)] == [200, 200]
    assert tree(extracted) == {"maps": "dir", "maps/readme.txt": hashlib.sha256(b"version 2\n").hexdigest(),
                               "new.txt": hashlib.sha256(b"new").hexdigest()}
    assert not stale.exists()
    assert not [n for n in listing(directory) if n.endswith((".extracting", ".old", ".part"))]


def _reference_tree(tmp_path, name):
    """The archive extracted by safe_extract on its own, to compare the fetched tree with."""
    ref = tmp_path / ("ref-" + name)
    if not ref.exists():
        safe_extract(tmp_path / name, ref)
    return ref


def test_an_archive_of_one_vocabulary_comes_with_that_vocabulary(server, tmp_path):
    data = open(build_zip(tmp_path / "extras.zip", [("terms/notes.txt", "file", b"tf-idf notes\n")]), "rb").read()
    server.files[f"/{NS}/{VOCAB_ZIP}"] = data
    manifest = manifest_with(tmp_path / "m.tsv", {VOCAB_ZIP: data})
    without = fetch_neurosynth(7, tmp_path / "c", base_url=server.url, manifest=manifest, vocab=None, convert=False)
    assert "extras" not in without.files and not server.requests(VOCAB_ZIP)
    release = fetch_neurosynth(7, tmp_path / "c", base_url=server.url, manifest=manifest, convert=False)
    assert release.files["extras"] == str(tmp_path / "c" / NS / "data-neurosynth_version-7_vocab-terms_extras")
    assert (tmp_path / "c" / NS / "data-neurosynth_version-7_vocab-terms_extras" / "terms" / "notes.txt").read_bytes() \
        == b"tf-idf notes\n"


def test_fetched_hostile_archive_with_a_correct_checksum_is_still_refused(server, tmp_path):
    evil = archive_bytes(tmp_path, "evil", [OK, ("lnk", "symlink", "../../.."), ("lnk/evil", "file", b"x")])
    server.files[f"/{NS}/{ARCHIVE}"] = evil
    manifest = manifest_with(tmp_path / "m.tsv", {ARCHIVE: evil})  # the pin matches: only the contents are wrong
    cache = tmp_path / "cache"
    directory = cache / NS

    with pytest.raises(UnsafeArchiveError) as info:
        fetch_neurosynth(7, cache, base_url=server.url, manifest=manifest, vocab=None, convert=False)

    err = info.value
    assert isinstance(err, ArchiveError) and isinstance(err, XcoactError) and isinstance(err, OSError)
    assert not isinstance(err, DownloadError)
    assert str(err) == (
        f"{directory / ARCHIVE}: refused, nothing was extracted: member 'lnk' is a symbolic link to '../../..', which "
        "resolves outside the target directory; member 'lnk/evil' lies under 'lnk', a symbolic link in the archive "
        f"(it would be written wherever the link points). {TAIL} The archive came from {server.url}/{NS}/{ARCHIVE} "
        f"and matches its pinned checksum sha256:{hashlib.sha256(evil).hexdigest()}, so the manifest pins an unsafe "
        "file; it was removed from the cache.")
    assert [r["status"] for r in server.requests(ARCHIVE)] == [200]  # it was downloaded and verified first
    # the verified plain files stay; of the archive nothing remains: no tree, no marker, no archive, no temporary
    assert [n for n in listing(directory) if n != ".lock"] == [
        "data-neurosynth_version-7_coordinates.tsv.gz", "data-neurosynth_version-7_metadata.tsv.gz"]
    assert listing(cache) == [NS] and not (tmp_path / "evil").exists()


def test_a_corrupted_archive_download_is_a_checksum_error_and_is_not_extracted(server, tmp_path):
    good = archive_bytes(tmp_path, "v1", good_members(".tar.gz"))
    server.files[f"/{NS}/{ARCHIVE}"] = good
    manifest = manifest_with(tmp_path / "m.tsv", {ARCHIVE: good})
    server.script(NS, ARCHIVE, "corrupt")
    with pytest.raises(fetch.ChecksumError, match=re.escape(f"{ARCHIVE}: checksum mismatch")):
        fetch_neurosynth(7, tmp_path / "c", base_url=server.url, manifest=manifest, vocab=None, convert=False)
    assert not [n for n in listing(tmp_path / "c" / NS) if "images" in n]
    release = fetch_neurosynth(7, tmp_path / "c", base_url=server.url, manifest=manifest, vocab=None, convert=False)
    with open(os.path.join(release.files["images"], "maps", "readme.txt"), "rb") as fh:
        assert fh.read() == README
    assert git_blob_sha1(tmp_path / "c" / NS / ARCHIVE) == hashlib.sha1(b"blob %d\0" % len(good) + good).hexdigest()
