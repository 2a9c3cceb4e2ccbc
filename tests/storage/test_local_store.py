"""A directory as a tier: keys confined to the root, copies checked and atomic,
listing by prefix in pages that skip copies in progress."""

import hashlib
import os

import pytest

from triopacs.storage.local_store import LocalStore, key_path
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
