"""Audit records in the DICOM audit message vocabulary (PS3.15 A.5, after RFC 3881):
an event (ID, action, outcome, type), its active participants (who asked, who served)
and participant objects (patients, studies, queries). Pure values and builders; the
chained file that keeps them is audit_log.py, the XML form `to_xml`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class Code:
    code: str
    meaning: str
    scheme: str = "DCM"


# Event IDs (DCM, PS3.15 A.5.3).
INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
STUDY_DELETED = Code("110105", "DICOM Study Deleted")
QUERY = Code("110112", "Query")
SECURITY_ALERT = Code("110113", "Security Alert")
USER_AUTHENTICATION = Code("110114", "User Authentication")
# Event type codes.
LOGIN = Code("110122", "Login")
NODE_AUTHENTICATION = Code("110126", "Node Authentication")
RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
# Active participant roles.
APPLICATION = Code("110150", "Application")
DESTINATION = Code("110152", "Destination Role ID")
SOURCE = Code("110153", "Source Role ID")
# Participant object ID types.
PATIENT_NUMBER = Code("2", "Patient Number", "RFC-3881")
STUDY_UID = Code("110180", "Study Instance UID")
SOP_CLASS_UID = Code("110181", "SOP Class UID")
NODE_ID = Code("110182", "Node ID")

# Event outcome indicator.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12
# Event action codes: Create, Read, Update, Delete, Execute.
ACTIONS = ("C", "R", "U", "D", "E")
# Participant object type (1 person, 2 system object) and role (1 patient, 3 report, 24 query).
PERSON, SYSTEM_OBJECT = 1, 2
ROLE_PATIENT, ROLE_REPORT, ROLE_QUERY = 1, 3, 24


@attrs.frozen(kw_only=True)
class Participant:
    user_id: str  # an AE title, a user name, a process
    requestor: bool
    alt_user_id: str = ""  # the user identity proved on an association, if any
    user_name: str = ""  # the peer certificate's subject (TLS), if any
    address: str = ""  # network access point: the host
    role: Code | None = None


@attrs.frozen(kw_only=True)
class ParticipantObject:
    id: str
    id_type: Code
    type: int
    role: int
    name: str = ""
    details: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class AuditRecord:
    event: Code
    action: str
    outcome: int = SUCCESS
    outcome_text: str = ""
    event_types: tuple[Code, ...] = ()
    participants: tuple[Participant, ...] = ()
    objects: tuple[ParticipantObject, ...] = ()


def _code_fields(code: Code | None) -> dict[str, str] | None:
    return None if code is None else {"code": code.code, "meaning": code.meaning, "scheme": code.scheme}


def record_fields(record: AuditRecord) -> dict[str, Any]:
    """The record as JSON-ready fields (what attrs.asdict gives, several times faster:
    one is made per C-STORE)."""
    return {
        "event": _code_fields(record.event),
        "action": record.action,
        "outcome": record.outcome,
        "outcome_text": record.outcome_text,
        "event_types": [_code_fields(c) for c in record.event_types],
        "participants": [
            {"user_id": p.user_id, "requestor": p.requestor, "alt_user_id": p.alt_user_id, "user_name": p.user_name,
             "address": p.address, "role": _code_fields(p.role)}
            for p in record.participants
        ],
        "objects": [
            {"id": o.id, "id_type": _code_fields(o.id_type), "type": o.type, "role": o.role, "name": o.name,
             "details": [list(d) for d in o.details]}
            for o in record.objects
        ],
    }


def outcome_of(status: int) -> int:
    """A DIMSE status as an event outcome: success and warnings succeed; a cancel or a
    refusal is a minor failure; anything else serious."""
    if status == 0 or 0xB000 <= status <= 0xBFFF or status == 0x0001:
        return SUCCESS
    if status in (0xFE00, 0x0124, 0x0122, 0xA700, 0xA701, 0xA702, 0xA801):
        return MINOR_FAILURE
    return SERIOUS_FAILURE


# --- who -------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Peer:
    """The requesting side of an association or an HTTP request."""

    ae_title: str = ""
    host: str = ""
    username: str = ""
    tls_subject: str | None = None


def requestor(peer: Peer, role: Code | None = None) -> Participant:
    return Participant(
        user_id=peer.ae_title or peer.username or peer.host, requestor=True, alt_user_id=peer.username,
        user_name=peer.tls_subject or "", address=peer.host, role=role,
    )


def ourselves(ae_title: str, role: Code | None = APPLICATION) -> Participant:
    return Participant(user_id=ae_title, requestor=False, role=role)


def patient(patient_id: str) -> ParticipantObject:
    return ParticipantObject(id=patient_id, id_type=PATIENT_NUMBER, type=PERSON, role=ROLE_PATIENT)


def study(study_uid: str, **details: Any) -> ParticipantObject:
    return ParticipantObject(
        id=study_uid, id_type=STUDY_UID, type=SYSTEM_OBJECT, role=ROLE_REPORT, details=_details(details)
    )


def _details(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((key, str(value)) for key, value in values.items() if value not in (None, ""))


# --- events ----------------------------------------------------------------------------------------


def association(ae_title: str, peer: Peer, *, accepted: bool, reason: str = "") -> AuditRecord:
    """An association opened (a node's login) or rejected, and why."""
    return AuditRecord(
        event=USER_AUTHENTICATION, action="E", outcome=SUCCESS if accepted else MINOR_FAILURE, outcome_text=reason,
        event_types=(LOGIN,), participants=(requestor(peer), ourselves(ae_title)),
    )


def tls_refused(ae_title: str, peer: Peer, reason: str) -> AuditRecord:
    return AuditRecord(
        event=SECURITY_ALERT, action="E", outcome=MINOR_FAILURE, outcome_text=reason, event_types=(NODE_AUTHENTICATION,),
        participants=(requestor(peer), ourselves(ae_title)),
        objects=(ParticipantObject(id=peer.host, id_type=NODE_ID, type=SYSTEM_OBJECT, role=ROLE_REPORT),),
    )


def not_authorized(ae_title: str, peer: Peer, *, operation: str, sop_class_uid: str, reason: str) -> AuditRecord:
    """A DIMSE request refused because the peer's role lacks its permission (0124)."""
    return AuditRecord(
        event=SECURITY_ALERT, action="E", outcome=MINOR_FAILURE, outcome_text=reason, event_types=(RESTRICTED_FUNCTION,),
        participants=(requestor(peer), ourselves(ae_title)),
        objects=(ParticipantObject(id=sop_class_uid, id_type=SOP_CLASS_UID, type=SYSTEM_OBJECT, role=ROLE_REPORT,
                                   details=(("operation", operation),)),),
    )


def instance_stored(
    ae_title: str, peer: Peer, *, study_uid: str, patient_id: str, sop_class_uid: str, sop_instance_uid: str, status: int
) -> AuditRecord:
    objects = [study(study_uid, sop_class=sop_class_uid, sop_instance=sop_instance_uid, instances=1)] if study_uid else []
    if patient_id:
        objects.append(patient(patient_id))
    return AuditRecord(
        event=INSTANCES_TRANSFERRED, action="C", outcome=outcome_of(status), outcome_text=f"status {status:04X}",
        participants=(requestor(peer, SOURCE), ourselves(ae_title, DESTINATION)), objects=tuple(objects),
    )


def query(ae_title: str, peer: Peer, *, sop_class_uid: str, keys: Mapping[str, Any], matches: int, status: int) -> AuditRecord:
    return AuditRecord(
        event=QUERY, action="E", outcome=outcome_of(status), outcome_text=f"status {status:04X}",
        participants=(requestor(peer), ourselves(ae_title)),
        objects=(
            ParticipantObject(
                id=sop_class_uid, id_type=SOP_CLASS_UID, type=SYSTEM_OBJECT, role=ROLE_QUERY,
                details=_details({**keys, "matches": matches}),
            ),
        ),
    )


def retrieve(
    ae_title: str, peer: Peer, *, kind: str, destination: str, studies: Iterable[tuple[str, str]],
    completed: int, failed: int, status: int,
) -> AuditRecord:
    """A C-MOVE or C-GET: we are the source; the destination is the move destination
    (a C-GET's is the requestor itself). `studies`: (study UID, patient ID) pairs."""
    pairs = sorted(set(studies))
    objects = [study(uid, retrieve=kind, completed=completed, failed=failed) for uid, _ in pairs if uid]
    objects += [patient(pid) for pid in sorted({pid for _, pid in pairs if pid})]
    receiving = Participant(user_id=destination, requestor=destination == peer.ae_title, role=DESTINATION)
    participants = [requestor(peer)] if destination != peer.ae_title else []
    return AuditRecord(
        event=INSTANCES_TRANSFERRED, action="R", outcome=outcome_of(status), outcome_text=f"status {status:04X}",
        participants=(*participants, ourselves(ae_title, SOURCE), receiving), objects=tuple(objects),
    )


def web_access(ae_title: str, peer: Peer, *, method: str, path: str, status: int, study_uid: str = "") -> AuditRecord:
    """An admin API request that read or changed data (or was refused)."""
    deleting = method == "DELETE"
    event = STUDY_DELETED if deleting and status < 400 else INSTANCES_ACCESSED
    outcome = SUCCESS if status < 400 else (MINOR_FAILURE if status < 500 else SERIOUS_FAILURE)
    objects = (study(study_uid),) if study_uid else ()
    return AuditRecord(
        event=event, action="D" if deleting else "R", outcome=outcome, outcome_text=f"HTTP {status} {method} {path}",
        participants=(requestor(peer), ourselves(ae_title)), objects=objects,
    )


def web_login(ae_title: str, peer: Peer, *, ok: bool, reason: str = "") -> AuditRecord:
    return AuditRecord(
        event=USER_AUTHENTICATION, action="E", outcome=SUCCESS if ok else MINOR_FAILURE, outcome_text=reason,
        event_types=(LOGIN,), participants=(requestor(peer), ourselves(ae_title)),
    )


# --- XML -------------------------------------------------------------------------------------------


def _code(parent: ET.Element, tag: str, code: Mapping[str, str]) -> None:
    ET.SubElement(parent, tag, {"csd-code": code["code"], "codeSystemName": code["scheme"], "originalText": code["meaning"]})


def to_xml(entry: Mapping[str, Any]) -> ET.Element:
    """One stored record (its JSON form, as audit_log reads it) as an AuditMessage
    element of the DICOM audit message schema (PS3.15 A.5.1)."""
    message = ET.Element("AuditMessage")
    event = ET.SubElement(message, "EventIdentification", {
        "EventActionCode": entry["action"], "EventDateTime": entry["time"], "EventOutcomeIndicator": str(entry["outcome"]),
    })
    _code(event, "EventID", entry["event"])
    for event_type in entry.get("event_types", ()):
        _code(event, "EventTypeCode", event_type)
    if entry.get("outcome_text"):
        ET.SubElement(event, "EventOutcomeDescription").text = entry["outcome_text"]
    for participant in entry.get("participants", ()):
        attributes = {"UserID": participant["user_id"], "UserIsRequestor": "true" if participant["requestor"] else "false"}
        if participant.get("alt_user_id"):
            attributes["AlternativeUserID"] = participant["alt_user_id"]
        if participant.get("user_name"):
            attributes["UserName"] = participant["user_name"]
        if participant.get("address"):
            attributes["NetworkAccessPointID"] = participant["address"]
            attributes["NetworkAccessPointTypeCode"] = "2"  # an IP address
        element = ET.SubElement(message, "ActiveParticipant", attributes)
        if participant.get("role"):
            _code(element, "RoleIDCode", participant["role"])
    source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": entry.get("source", "")})
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4", "codeSystemName": "DCM", "originalText": "Application Server Process"})
    for item in entry.get("objects", ()):
        element = ET.SubElement(message, "ParticipantObjectIdentification", {
            "ParticipantObjectID": item["id"], "ParticipantObjectTypeCode": str(item["type"]),
            "ParticipantObjectTypeCodeRole": str(item["role"]),
        })
        _code(element, "ParticipantObjectIDTypeCode", item["id_type"])
        for key, value in item.get("details", ()):
            ET.SubElement(element, "ParticipantObjectDetail", {"type": key, "value": value})
    return message
