import json

import pytest

from unmix.core import files, records
from unmix.core.env import env_info
from unmix.core.errors import UnmixError


def make(tmp_path):
    rec = records.new_record("knn", {"label": "moco", "path": "x.pth"}, {"name": "knn-k200-t0.1"},
                             env={"torch": "2.13"})
    return records.finish(rec, {"top1": 91.25})


def test_roundtrip_and_schema(tmp_path):
    path = records.write(make(tmp_path), tmp_path)
    assert path == tmp_path / "result.json"
    rec = records.load(path)
    assert rec["metrics"] == {"top1": 91.25} and rec["status"] == "finished"
    assert records.is_finished(tmp_path)
    assert records.find([tmp_path]) == [path]


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON at line 1"),
    ("[1, 2]", "top level is list"),
    ('{"schema": "other/1"}', "not an unmix result record"),
    (json.dumps({"schema": records.SCHEMA, "kind": "knn"}), "missing keys"),
])
def test_bad_records_name_the_file(tmp_path, content, message):
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(UnmixError, match=message) as e:
        records.load(path)
    assert str(path) in str(e.value)
    assert not records.is_finished(tmp_path)


def test_failed_record_keeps_the_error(tmp_path):
    rec = records.new_record("detection", {"label": "x"}, {"name": "voc"}, env={})
    records.fail(rec, ValueError("boom\nsecond line"))
    records.write(rec, tmp_path)
    back = records.load(tmp_path / "result.json")
    assert back["status"] == "failed" and back["error"] == "ValueError: boom second line"
    assert not records.is_finished(tmp_path)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    dst = tmp_path / "a.txt"
    dst.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(dst) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert dst.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_env_info_names_versions():
    info = env_info()
    assert info["torch"] and info["python"] and "device" in info and "mmcv_ops" in info
