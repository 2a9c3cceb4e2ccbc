"""`triopacs worklist add|list|remove` as a person uses them: items from DICOM and DICOM
JSON files go into a stopped node's index, a node started afterwards answers findscu -W
with them, `list` works beside a running node, and changes are refused while one serves."""

import json

from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cli_process import run_cli
from peers import findscu

from triopacs.protocol.catalog import MODALITY_WORKLIST_FIND


from .nodes import AE_TITLE
from .served import served_node
from .test_node_worklist import item


def write_item(path, ds) -> None:
    """As a RIS exports one: a Part 10 file of the Modality Worklist information model."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MODALITY_WORKLIST_FIND
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def config_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\nae_title = "{AE_TITLE}"\n')
    return path


async def test_add_list_remove_then_a_node_answers_with_them(tmp_path):
    config = config_file(tmp_path)
    dicom = tmp_path / "sps1.dcm"
    write_item(dicom, item("SPS1", "PAT1", "Doe^Jane", "CT", "CT1", "080000"))
    as_json = tmp_path / "more.json"
    as_json.write_text(json.dumps([item("SPS2", "PAT2", "Roe^Richard", "MR", "MR1", "093000").to_json_dict(),
                                   item("SPS3", "PAT3", "Müller^Jürgen", "CT", "CT1", "140000").to_json_dict()]))

    added = await run_cli(["worklist", "add", str(dicom), str(as_json), "--config", str(config)])
    assert added.returncode == 0, added.stderr
    assert added.stdout.decode().split("\n")[:3] == ["added SPS1", "added SPS2", "added SPS3"]
    again = await run_cli(["worklist", "add", str(dicom), "--config", str(config)])
    assert again.stdout.decode().strip() == "replaced SPS1"
    removed = await run_cli(["worklist", "remove", "SPS2", "--config", str(config)])
    assert removed.returncode == 0 and removed.stdout.decode().strip() == "removed SPS2"
    missing = await run_cli(["worklist", "remove", "SPS2", "--config", str(config)])
    assert missing.returncode == 1 and missing.stderr.decode().strip() == "triopacs worklist: no item SPS2"

    async with served_node(tmp_path) as node:  # the same data directory
        answer = await findscu(node, ["PatientID", "PatientName"], level=None, model="worklist")
        assert answer.ok and sorted(r["PatientID"] for r in answer.responses) == ["PAT1", "PAT3"]
        # list reads beside the running node; add and remove refuse while it serves
        listed = await run_cli(["worklist", "list", "--config", str(config)])
        rows = listed.stdout.decode().splitlines()
        assert listed.returncode == 0 and [row.split()[0] for row in rows[1:]] == ["SPS1", "SPS3"]
        assert "Müller^Jürgen" in rows[2]
        refused = await run_cli(["worklist", "add", str(dicom), "--config", str(config)])
        assert refused.returncode == 2
        (line,) = refused.stderr.decode().splitlines()
        assert f"in use by another node (pid {node.process.pid})" in line


async def test_a_bad_item_file_is_named_and_nothing_is_added(tmp_path):
    config = config_file(tmp_path)
    good = tmp_path / "good.dcm"
    write_item(good, item("SPS1", "PAT1", "Doe^Jane", "CT", "CT1", "080000"))
    not_an_item = tmp_path / "bad.json"
    not_an_item.write_text('{"00100020": {"vr": "LO", "Value": ["P"]}}')  # no Scheduled Procedure Step
    for bad, why in ((not_an_item, "Scheduled Procedure Step"), (tmp_path / "absent.dcm", "No such file"),
                     (tmp_path / "node.toml", "")):
        done = await run_cli(["worklist", "add", str(good), str(bad), "--config", str(config)])
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.decode().splitlines()
        assert line.startswith(f"triopacs worklist: {bad}: ") and why in line
    listed = await run_cli(["worklist", "list", "--config", str(config)])
    assert listed.stdout.decode().splitlines()[1:] == []
