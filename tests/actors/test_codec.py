"""Every registered message type survives JSON and back (what traces rely on)."""

import base64
import importlib
import pkgutil
import typing
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, reject, settings
from pydicom import Dataset

import triopacs
from triopacs.actors import dumps, loads, registered
from triopacs.actors.node.wire import RecordedDataset
from triopacs.client.link import DatasetSink
from triopacs.protocol.commands import (
    CEchoRQ, CFindRSP, CStoreRQ, DimseMessage, DimseRequest, DimseResponse, NEventReportRQ, NEventReportRSP,
)
from triopacs.protocol.negotiation import ProposedContext, build_request
from triopacs.protocol.pdu import AAssociateRQ
from triopacs.storage.dicom_json import JsonDataset
from triopacs.storage.object_writer import ObjectWriter
from triopacs.storage.worklist import WorklistItem


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(triopacs.__path__, "triopacs."):
        if ".tests" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)


_import_every_module()


@st.composite
def datasets(draw) -> Dataset:
    ds = Dataset()
    text = st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\\^=\x00"), max_size=20)
    ds.PatientName = draw(text).strip()
    ds.PatientID = draw(text).strip()[:16]
    ds.StudyInstanceUID = draw(st.from_regex(r"1\.2\.[1-9][0-9]{0,8}", fullmatch=True))
    ds.Rows = draw(st.integers(0, 65535))
    ds.add_new(0x00091010, "OB", draw(st.binary(max_size=32)))
    return ds


st.register_type_strategy(Dataset, datasets())

# The association's peer events carry DIMSE commands, an A-ASSOCIATE-RQ and datasets.
st.register_type_strategy(
    DimseMessage,
    st.sampled_from([
        CEchoRQ(message_id=7, affected_sop_class_uid="1.2.840.10008.1.1"),
        CStoreRQ(message_id=9, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2", affected_sop_instance_uid="1.2.3.4"),
        CFindRSP(message_id_being_responded_to=3, status=0xA900, error_comment="no"),
    ]),
)
# ... and what the node sends on a peer's association (a storage commitment report).
st.register_type_strategy(
    DimseRequest,
    st.just(NEventReportRQ(message_id=2, affected_sop_class_uid="1.2.840.10008.1.20.1",
                           affected_sop_instance_uid="1.2.840.10008.1.20.1.1", event_type_id=1, has_dataset=True)),
)
st.register_type_strategy(
    DimseResponse,
    st.just(NEventReportRSP(message_id_being_responded_to=2, status=0, event_type_id=1)),
)
st.register_type_strategy(
    AAssociateRQ,
    st.just(build_request(calling_ae_title="A", called_ae_title="B", contexts=[ProposedContext(abstract_syntax="1.2.840.10008.1.1")])),
)
st.register_type_strategy(
    DatasetSink,
    st.one_of(
        st.binary(max_size=16).map(lambda data: RecordedDataset({"memory": base64.b64encode(data).decode()})),
        st.just(RecordedDataset({"received": 10, "temp": "/tmp/x.part", "refused": None})),
    ),
)
# A hot tier's writer travels as its description, like a received dataset.
st.register_type_strategy(ObjectWriter, st.just(RecordedDataset({"dest": "/data/files/1.dcm", "temp": None})))
# NaN is never equal to itself, so it cannot show a round trip; everything else can.
st.register_type_strategy(float, st.floats(allow_nan=False))

# DICOM JSON attribute lists (typed dict[str, Any], which has no strategy of its own):
# what MPPS steps and worklist items carry between the services and the index.
JSON_DATASETS = st.dictionaries(
    st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
    st.one_of(
        st.fixed_dictionaries({"vr": st.just("LO"), "Value": st.lists(st.text(max_size=8), max_size=2)}),
        st.fixed_dictionaries({"vr": st.just("US"), "Value": st.lists(st.integers(0, 65535), max_size=2)}),
        st.fixed_dictionaries({"vr": st.just("SQ"), "Value": st.lists(st.just({"00080100": {"vr": "SH", "Value": ["X"]}}), max_size=1)}),
    ),
    max_size=3,
)


def _message_strategy(cls) -> st.SearchStrategy:
    """from_type, except that an attribute list typed dict[str, Any] gets DICOM JSON (the
    field types are resolved first: modules with postponed annotations give strings)."""
    hints = typing.get_type_hints(cls)
    if not any(hint in (dict[str, Any], JsonDataset) for hint in hints.values()):
        return st.from_type(cls)
    fields = {
        field.alias: JSON_DATASETS if hints[field.name] in (dict[str, Any], JsonDataset) else st.from_type(hints[field.name])
        for field in attrs.fields(cls)
        if field.init
    }
    return st.builds(cls, **fields)


st.register_type_strategy(WorklistItem, st.deferred(lambda: _message_strategy(WorklistItem)))

MESSAGE_TYPES = sorted(registered().items())


def test_registry_is_not_empty():
    tags = {tag for tag, _ in MESSAGE_TYPES}
    assert {"runtime.actor-failed", "runtime.actor-restarted"} <= tags


@pytest.mark.parametrize("tag,cls", MESSAGE_TYPES, ids=[t for t, _ in MESSAGE_TYPES])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip(tag, cls, data):
    try:
        message = data.draw(_message_strategy(cls))
    except (ValueError, TypeError):
        reject()  # a value the message's own validators refuse is no example of it
    assert loads(dumps(message)) == message
