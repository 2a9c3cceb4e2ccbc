"""`triopacs find` with values outside ASCII, against a node holding names stored in
ISO 2022 IR 87 (Japanese), ISO_IR 100 (Latin-1) and ISO_IR 192 (UTF-8): the query goes
out in UTF-8 and says so (Specific Character Set ISO_IR 192), the answers are read in
their own character set."""

import json

import pytest
import trio
from cli_process import run_cli
from dicom_samples import SeriesSpec, new_uid, write_series
from node.nodes import running_node

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for

from .helpers import LOOPBACK

AE_TITLE = "TRIOPACS"
YAMADA = "Yamada^Tarou=山田^太郎=やまだ^たろう"
PATIENTS = [
    ("JP1", YAMADA, "\\ISO 2022 IR 87"),
    ("LAT1", "Müller^Jürgen", "ISO_IR 100"),
    ("UTF1", "王^小東", "ISO_IR 192"),
    *((f"ASCII{n}", name, "") for n, name in enumerate(["DOE^JANE", "ROE^RICHARD", "SMITH^ANN", "YAMAMOTO^KEN", "MUELLER^HANS"])),
]


@pytest.fixture
async def node(tmp_path):
    files = []
    for patient_id, name, charset in PATIENTS:
        spec = SeriesSpec(count=1, patient_id=patient_id, patient_name=name, specific_character_set=charset, study_instance_uid=new_uid())
        files += write_series(tmp_path / "source", spec).paths
    async with running_node(tmp_path) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
            assert all([(await association.store(path)).ok for path in files])
        yield node


async def find(node, *keys: str) -> tuple[list[str], list[dict]]:
    args = ["find", LOOPBACK, str(node.address.port), "--level", "STUDY", *(arg for key in keys for arg in ("-k", key))]
    results = {}

    async def run(name, argv):
        results[name] = await run_cli(argv)

    async with trio.open_nursery() as nursery:  # start-up is most of a run's time
        nursery.start_soon(run, "table", args)
        nursery.start_soon(run, "json", [*args, "--json"])
    table, as_json = results["table"], results["json"]
    assert table.returncode == 0 and as_json.returncode == 0, table.stderr.decode() + as_json.stderr.decode()
    return table.stdout.decode().splitlines(), json.loads(as_json.stdout)


@pytest.mark.parametrize(
    "pattern, patient_id, name",
    [("*山田*", "JP1", YAMADA), ("Müller*", "LAT1", "Müller^Jürgen"), ("王*", "UTF1", "王^小東"), ("*やまだ*", "JP1", YAMADA)],
)
async def test_find_sends_non_ascii_values_in_utf8_and_reads_answers_in_their_character_set(node, pattern, patient_id, name):
    rows, matches = await find(node, f"PatientName={pattern}", "PatientID")
    assert [row.split(maxsplit=1) for row in rows[1:]] == [[name, patient_id]]  # one right match, printed right
    assert [(m["00100020"]["Value"][0], m["00100010"]["Value"][0]["Alphabetic"]) for m in matches] == [(patient_id, name.split("=")[0])]
