"""The audit trail's file format without a node: the hash chain, what `verify` names
when a record is changed, removed or inserted, rotation keeping the chain, a torn last
line cut at open, the head check, and the XML export."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import attrs

from triopacs.storage import audit_records as ar
from triopacs.storage.audit_log import AuditLog, GENESIS, since, trail_files, verify

PEER = ar.Peer(ae_title="CT1", host="10.0.0.7", username="tech", tls_subject="CN=ct1")


def stored(n: int) -> list[dict]:
    return [
        attrs.asdict(ar.instance_stored(
            "TRIOPACS", PEER, study_uid=f"1.2.3.{i}", patient_id=f"P{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            sop_instance_uid=f"1.2.3.{i}.1", status=0,
        ))
        for i in range(n)
    ]


def write(tmp_path, n: int = 10, **options) -> AuditLog:
    log = AuditLog.open(tmp_path / "audit.jsonl", fsync=False, **options)
    for record in stored(n):
        log.append([record], "TRIOPACS")
    return log


def lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_the_chain_verifies_and_continues_after_reopening(tmp_path):
    log = write(tmp_path, 5)
    log.close()
    log = AuditLog.open(tmp_path / "audit.jsonl", fsync=False)
    assert log.seq == 5
    assert log.append(stored(3), "TRIOPACS") == [6, 7, 8]  # one write for a batch
    log.close()
    result = verify(tmp_path / "audit.jsonl")
    assert result.ok and result.records == 8 and result.head_seq == 8 and result.head == log.head
    first = json.loads(lines(tmp_path / "audit.jsonl")[0])
    assert first["prev"] == GENESIS and first["seq"] == 1 and first["source"] == "TRIOPACS"
    assert first["event"]["code"] == "110104" and first["participants"][0]["alt_user_id"] == "tech"


def test_verify_names_the_first_record_changed_removed_or_inserted(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(tmp_path, 10).close()
    original = lines(path)

    changed = list(original)
    changed[3] = changed[3].replace(b'"P3"', b'"P9"')
    path.write_bytes(b"".join(changed))
    assert "line 4: record 4 was changed" in verify(path).problem

    path.write_bytes(b"".join(original[:4] + original[5:]))
    assert "line 5: record 5 removed" in verify(path).problem

    path.write_bytes(b"".join(original[:6] + [original[2]] + original[6:]))
    assert "line 7: record 3 inserted" in verify(path).problem

    path.write_bytes(b"".join(original[:2] + [b"not json\n"] + original[2:]))
    assert "line 3: not an audit record" in verify(path).problem

    # Records cut off the end: only a head kept elsewhere shows it.
    path.write_bytes(b"".join(original))
    head = verify(path)
    path.write_bytes(b"".join(original[:8]))
    assert verify(path).ok
    assert "cut off the end" in verify(path, expected_head=f"{head.head_seq}:{head.head}").problem


def test_rotation_keeps_the_chain_across_files(tmp_path):
    log = write(tmp_path, 40, rotate_bytes=4096)
    log.close()
    files = trail_files(tmp_path / "audit.jsonl")
    assert len(files) > 2
    result = verify(tmp_path / "audit.jsonl")
    assert result.ok and result.records == 40 and result.files == len(files)
    # A rotated file removed: the next file's first record does not follow.
    files[1].unlink()
    assert not verify(tmp_path / "audit.jsonl").ok
    assert "removed" in verify(tmp_path / "audit.jsonl").problem


def test_a_torn_last_line_is_cut_at_open(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(tmp_path, 3).close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"seq":4,"half a rec')
    log = AuditLog.open(path, fsync=False)
    assert log.cut == len(b'{"seq":4,"half a rec') and log.seq == 3
    log.append(stored(1), "TRIOPACS")
    log.close()
    assert verify(path).ok and verify(path).records == 4


def test_export_is_dicom_audit_message_xml(tmp_path):
    log = AuditLog.open(tmp_path / "audit.jsonl", fsync=False)
    log.append([attrs.asdict(ar.association("TRIOPACS", PEER, accepted=False, reason="calling AE 'CT1' has no rule"))], "TRIOPACS")
    log.append(stored(1), "TRIOPACS")
    log.close()
    records = list(since(tmp_path / "audit.jsonl", "2000-01-01"))
    assert len(records) == 2 and not list(since(tmp_path / "audit.jsonl", "2999-01-01"))
    rejected, store = (ar.to_xml(r) for r in records)
    ET.fromstring(ET.tostring(rejected))  # well-formed
    event = rejected.find("EventIdentification")
    assert event.get("EventOutcomeIndicator") == "4" and event.find("EventID").get("csd-code") == "110114"
    assert event.find("EventTypeCode").get("csd-code") == "110122" and "no rule" in event.find("EventOutcomeDescription").text
    requestor = rejected.find("ActiveParticipant")
    assert requestor.get("UserID") == "CT1" and requestor.get("UserIsRequestor") == "true" and requestor.get("NetworkAccessPointID") == "10.0.0.7"
    assert store.find("EventIdentification").get("EventActionCode") == "C"
    ids = {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o.get("ParticipantObjectID") for o in store.findall("ParticipantObjectIdentification")}
    assert ids == {"110180": "1.2.3.0", "2": "P0"}
    assert store.find("AuditSourceIdentification").get("AuditSourceID") == "TRIOPACS"
