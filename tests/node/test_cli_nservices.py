"""`triopacs commit` and `triopacs mpps` against a running node: the commitment report
on the same association and on a new one the node opens to the CLI's listener, failures
named with their reason, and an MPPS step created and completed, a late change refused."""

import json
import re
import subprocess

import trio
from dicom_samples import SeriesSpec, write_series

from cli_process import TRIOPACS, LineReader, run_cli
from triopacs import connect
from triopacs.actors.node.ae_registry import RegisterAE
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, remote, running_node
from .test_node_mpps import END, creation


async def store(node, paths) -> None:
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(paths)) as association:
        assert all([(await association.store(path)).ok for path in paths])


def network(node) -> list[str]:
    return [LOOPBACK, str(node.address.port), "--aec", AE_TITLE, "--aet", "MODALITY"]


async def test_commit_on_the_same_association_names_what_failed(tmp_path):
    sent = write_series(tmp_path / "sent", SeriesSpec(count=2, patient_id="C1"))
    never = write_series(tmp_path / "never", SeriesSpec(count=1, patient_id="C2"))
    async with running_node(tmp_path) as node:
        await store(node, list(sent.paths))
        done = await run_cli(["commit", *network(node), str(sent.folder)])
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.decode().split()) == sorted(
            word for uid in sent.sop_instance_uids for word in ("committed", uid))
        mixed = await run_cli(["commit", *network(node), str(sent.paths[0]), str(never.paths[0])])
    assert mixed.returncode == 1
    lines = mixed.stdout.decode().splitlines()
    assert f"committed {sent.sop_instance_uids[0]}" in lines
    assert f"FAILED {never.sop_instance_uids[0]} reason 0x0112" in lines  # no such object instance
    assert mixed.stderr.decode().splitlines()[-1] == "1 committed, 1 failed"


async def test_commit_takes_the_report_on_a_new_association(tmp_path):
    sent = write_series(tmp_path / "sent", SeriesSpec(count=2, patient_id="C3"))
    async with running_node(tmp_path, retry_initial=0.2) as node:
        await store(node, list(sent.paths))
        process = await trio.lowlevel.open_process(
            [*TRIOPACS, "commit", *network(node), str(sent.folder), "--listen", "0", "--wait", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        with trio.fail_after(60):
            line = await LineReader(process.stderr).readline()
            found = re.fullmatch(r"listening for the report as MODALITY on port (\d+)\n?", line)
            assert found, line
            port = int(found.group(1))
            # The node knows the CLI only now: a report it tried before is tried again.
            await node.aes.ask(RegisterAE(entry=remote("MODALITY", port)))
            output = b""
            while chunk := await process.stdout.receive_some(65536):  # to the end: lines may come apart
                output += chunk
            assert await process.wait() == 0
    assert sorted(output.decode().split()) == sorted(word for uid in sent.sop_instance_uids for word in ("committed", uid))


async def test_mpps_create_then_complete_then_a_late_set_is_refused(tmp_path):
    started = tmp_path / "started.json"
    started.write_text(json.dumps(creation()))
    completed = tmp_path / "completed.json"
    completed.write_text(json.dumps({"00400252": {"vr": "CS", "Value": ["COMPLETED"]}, **END}))
    async with running_node(tmp_path) as node:
        created = await run_cli(["mpps", "create", *network(node), str(started)])
        assert created.returncode == 0, created.stderr
        uid = created.stdout.decode().strip()
        assert re.fullmatch(r"[0-9.]+", uid)
        done = await run_cli(["mpps", "set", *network(node), uid, str(completed)])
        assert done.returncode == 0, done.stderr
        late = await run_cli(["mpps", "set", *network(node), uid, str(completed)])
    assert late.returncode == 1
    assert late.stderr.decode().startswith("triopacs mpps: N-SET refused by TRIOPACS@127.0.0.1:")
    assert "0x0110" in late.stderr.decode()


async def test_an_unreadable_attribute_file_is_bad_input(tmp_path):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    done = await run_cli(["mpps", "create", LOOPBACK, "9", str(garbage)])
    assert done.returncode == 2
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith(f"triopacs mpps: {garbage}: not DICOM JSON or a DICOM file")
