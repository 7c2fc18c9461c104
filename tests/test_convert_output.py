"""`unmix convert -o`: outputs that would destroy the input or cannot be written are refused in
one line before any work; a full disk is named as such; the source is never touched."""
from __future__ import annotations

import errno
import os

import pytest
import torch
import torchvision

from unmix.cli import main
from unmix.core.files import sha256_file


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "latest.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def convert(capsys, *argv):
    rc = main(["convert", *map(str, argv), "--no-verify"])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and (rc == 0 or len(err.splitlines()) == 1), err
    return rc, err


def test_converting_onto_the_source_is_refused_and_the_source_kept(capsys, src):
    before = sha256_file(src)
    rc, err = convert(capsys, src, "-o", src)
    assert rc == 1 and "is the input" in err and str(src) in err
    rc, err = convert(capsys, src, "-o", src.parent / "." / src.name)  # the same file spelled otherwise
    assert rc == 1 and "is the input" in err
    link = src.parent / "hardlink.pth"
    os.link(src, link)
    rc, err = convert(capsys, src, "-o", link)  # one inode: writing the link destroys the source
    assert rc == 1 and "is the input" in err
    link.unlink()
    assert sha256_file(src) == before


def test_output_that_is_a_directory_or_under_a_file(capsys, src, tmp_path):
    rc, err = convert(capsys, src, "-o", tmp_path)
    assert rc == 1 and err.endswith(f"-o {tmp_path}: is a directory (give a file name)")
    rc, err = convert(capsys, src, "-o", src / "out.pth")
    assert rc == 1 and f"{src} is a file, not a directory" in err


def test_full_disk_and_read_only_name_the_output(capsys, src, tmp_path, monkeypatch):
    from unmix.core import files

    for code, text in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
                       (errno.EACCES, "Permission denied")):
        def fail(*a, code=code, **k):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(files.tempfile, "mkstemp", fail)
        dst = tmp_path / "out.pth"
        rc, err = convert(capsys, src, "-o", dst)
        assert rc == 1 and err.endswith(f"{text}: {dst}") and not dst.exists()
