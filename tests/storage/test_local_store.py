"""A directory as a tier: keys confined to the root, copies checked and atomic,
listing by prefix in pages that skip copies in progress."""

import hashlib
import os

import pytest

from triopacs.storage.local_store import TRASH, LocalStore, key_path
from triopacs.storage.objects import ChecksumMismatch, ObjectMissing, ObjectStoreError


def sample(path, size=3000):
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x.dcm", "a/../../x.dcm", "a/\x00.dcm"])
def test_hostile_keys_are_refused(tmp_path, key):
    with pytest.raises(ObjectStoreError):
        key_path(tmp_path, key)


def test_put_get_head_delete(tmp_path):
    store = LocalStore(tmp_path / "warm")
    store.check()
    source, sha = sample(tmp_path / "in.dcm")
    stored = store.put_file("w/1.2/1.3/1.4.dcm", source, size=3000, sha256=sha)
    assert (stored.size, stored.sha256) == (3000, sha)
    assert store.head("w/1.2/1.3/1.4.dcm").sha256 == sha
    fetched = store.get_file("w/1.2/1.3/1.4.dcm", tmp_path / "out.dcm", expected_sha256=sha)
    assert fetched.sha256 == sha and (tmp_path / "out.dcm").read_bytes() == source.read_bytes()
    store.delete("w/1.2/1.3/1.4.dcm")
    store.delete("w/1.2/1.3/1.4.dcm")  # gone already: fine
    with pytest.raises(ObjectMissing):
        store.head("w/1.2/1.3/1.4.dcm")


def test_a_copy_that_is_not_what_the_index_says_is_refused_and_removed(tmp_path):
    store = LocalStore(tmp_path / "warm")
    source, _ = sample(tmp_path / "in.dcm")
    with pytest.raises(ObjectStoreError):
        store.put_file("k.dcm", source, size=3000, sha256="0" * 64)
    assert not (tmp_path / "warm" / "k.dcm").exists()
    source2, sha = sample(tmp_path / "in2.dcm")
    store.put_file("k.dcm", source2, size=3000, sha256=sha)
    with pytest.raises(ChecksumMismatch):
        store.get_file("k.dcm", tmp_path / "out.dcm", expected_sha256="1" * 64)
    assert not (tmp_path / "out.dcm").exists()


def test_listing_pages_by_prefix_and_skips_copies_in_progress(tmp_path):
    store = LocalStore(tmp_path / "warm")
    source, sha = sample(tmp_path / "in.dcm", 10)
    for n in range(5):
        store.put_file(f"p/{n}.dcm", source, size=10, sha256=sha)
    store.put_file("q/9.dcm", source, size=10, sha256=sha)
    (tmp_path / "warm" / "p" / ".4.dcm.abc.part").write_bytes(b"half")
    keys, cursor = [], None
    while True:
        page, cursor = store.list("p/", cursor=cursor, limit=2)
        keys += [o.key for o in page]
        if cursor is None:
            break
    assert keys == [f"p/{n}.dcm" for n in range(5)]
    assert [o.key for o in store.list("")[0]] == [*keys, "q/9.dcm"]


def test_an_unwritable_root_fails_the_check(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ObjectStoreError, match="not writable"):
        LocalStore(tmp_path / "file" / "warm").check()


# -- what the hot tier does besides: listing that resumes, a writer handed out, placing,
# bulk removal, checks


def test_pages_resume_after_the_cursor_and_together_list_every_object_once(tmp_path):
    store = LocalStore(tmp_path)
    # Names whose string order differs from their path order ("a-b" sorts before "a/").
    keys = ["files/a/1.dcm", "files/a/2/x.dcm", "files/a-b/1.dcm", "files/b/1.dcm", "files/b/c/d/e.dcm", "files/z.dcm"]
    for key in keys:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x" * 7)
    (tmp_path / "files/b/.e.dcm.0f.part").write_bytes(b"temp")
    (tmp_path / "index.sqlite").write_bytes(b"not under the prefix")
    for limit in (1, 2, 4, 100):
        seen, cursor = [], None
        while True:
            page, cursor = store.list("files/", cursor=cursor, limit=limit)
            assert len(page) <= limit
            seen += [found.key for found in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(keys) and len(seen) == len(set(seen)), limit
        assert all(found.size == 7 for found in store.list("files/")[0])


def test_a_writer_streams_into_a_temp_file_and_placing_puts_it_under_its_key(tmp_path):
    store = LocalStore(tmp_path)
    writer = store.writer("files/1.2/1.3/1.4.dcm")
    writer.write([b"head", memoryview(b"-middle")])
    assert writer.temp.parent == tmp_path / "files/1.2/1.3" and writer.temp.name.startswith(".")
    assert store.list("files/")[0] == []  # nothing is an object before it is placed
    writer.hand_in([b"-tail"])
    placed, written = store.place(writer, "files/1.2/1.3/1.4.dcm", overwrite=False)
    assert placed and (tmp_path / "files/1.2/1.3/1.4.dcm").read_bytes() == b"head-middle-tail"
    assert (written.size, written.sha256) == (16, hashlib.sha256(b"head-middle-tail").hexdigest())
    assert not writer.temp.exists()


def test_placing_over_an_object_needs_overwrite_and_abandoning_leaves_nothing(tmp_path):
    store = LocalStore(tmp_path)
    first = store.writer("files/k.dcm")
    first.hand_in([b"first"])
    assert store.place(first, "files/k.dcm", overwrite=False)[0]
    second = store.writer(None)  # key not known yet: written in the incoming area
    second.write([b"second"])
    assert second.temp.parent == tmp_path / "incoming"
    placed, _ = store.place(second, "files/k.dcm", overwrite=False)
    assert not placed and (tmp_path / "files/k.dcm").read_bytes() == b"first" and second.temp.exists()
    second.abandon()
    assert not second.temp.exists() and (tmp_path / "files/k.dcm").read_bytes() == b"first"
    third = store.writer(None)
    third.write([b"third"])
    assert store.place(third, "files/k.dcm", overwrite=True)[0]
    assert (tmp_path / "files/k.dcm").read_bytes() == b"third" and list((tmp_path / "incoming").iterdir()) == []


def test_removal_prunes_emptied_folders_but_never_the_top_one_and_refuses_unsafe_keys(tmp_path):
    store = LocalStore(tmp_path)
    for key in ("files/s/r/1.dcm", "files/s/r/2.dcm", "files/t/1.dcm"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    removal = store.remove(["files/s/r/1.dcm", "files/s/r/2.dcm", "files/gone.dcm", "../outside.dcm"])
    assert removal.done == ("files/s/r/1.dcm", "files/s/r/2.dcm", "files/gone.dcm")
    assert [key for key, _ in removal.failed] == ["../outside.dcm"]
    assert not (tmp_path / "files/s").exists() and (tmp_path / "files/t/1.dcm").exists()
    store.remove(["files/t/1.dcm"])
    assert (tmp_path / "files").is_dir() and not (tmp_path / "files/t").exists()


def test_removed_files_wait_in_the_trash_unlisted_until_it_is_emptied(tmp_path):
    store = LocalStore(tmp_path)
    for key in ("a/1.dcm", "a/2.dcm", "b/1.dcm"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(key.encode())
    assert store.remove(["a/1.dcm", "a/2.dcm"]).done == ("a/1.dcm", "a/2.dcm")
    assert sorted(p.read_bytes() for p in (tmp_path / TRASH).iterdir()) == [b"a/1.dcm", b"a/2.dcm"]
    assert [found.key for found in store.list("")[0]] == ["b/1.dcm"]
    assert store.empty_trash() == 2
    assert list((tmp_path / TRASH).iterdir()) == [] and store.empty_trash() == 0


def test_checks_tell_ok_missing_corrupt_and_a_wrong_structure_apart(tmp_path):
    from triopacs.storage.object_checks import ExpectedObject

    store = LocalStore(tmp_path)
    (tmp_path / "files").mkdir()
    source, sha = sample(tmp_path / "files/a.dcm")
    expected = [
        ExpectedObject(key="files/a.dcm", size=3000, sha256=sha),
        ExpectedObject(key="files/a.dcm", size=3000, sha256="0" * 64),
        ExpectedObject(key="files/none.dcm", size=1, sha256=sha),
        ExpectedObject(key="files/a.dcm", size=0, sha256="", checksum=False),
        ExpectedObject(key="files/a.dcm", size=3000, sha256=sha, uids=(("SOPInstanceUID", "1.2.3"),)),
        ExpectedObject(key="../escape.dcm", size=1, sha256=sha),
    ]
    outcomes = [check.outcome for check in store.check_objects(expected)]
    assert outcomes == ["ok", "corrupt", "missing", "ok", "structure", "unreadable"]
