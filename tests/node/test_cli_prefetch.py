"""`triopacs prefetch PATIENT_ID` and `--status` as a person uses them, with a DCMTK
dcmqrscp source: the command runs the node on the data directory, the priors arrive,
the status shows the counts (beside a running node too), and a second prefetch while a
node serves there is refused."""

import re

from cli_process import run_cli
from peers import storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import dcmqrscp
from peers.process import free_port

from .nodes import AE_TITLE
from .prefetch_support import Prior, write_priors
from .served import served_node


SUMMARY = re.compile(r"prefetched CLI1: (?P<counts>.*instances), (?P<bytes>\d+) bytes\), (?P<rest>.*), [\d.]+ s")


def config_file(tmp_path, port: int, source_port: int):
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\ndata_dir = "{tmp_path / "data"}"\nae_title = "{AE_TITLE}"\nport = {port}\n\n'
        f'[log]\nlevel = "warning"\n\n'
        f'[prefetch]\nlookback_days = 100\n\n'
        f'[[prefetch.source]]\nremote = "QRSCP"\n\n'
        f'[[remote]]\nae_title = "QRSCP"\nhost = "127.0.0.1"\nport = {source_port}\n'
    )
    return path


async def test_prefetch_a_patient_then_read_the_status(tmp_path):
    write_priors(tmp_path / "priors", [Prior("CLI1", "CT", "CHEST", 9, series=2), Prior("CLI1", "MR", "HEAD", 300)])
    port = free_port()
    async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, port)], parent_dir=tmp_path) as source:
        (await storescu(source, [tmp_path / "priors"])).check(expected=6)
        config = config_file(tmp_path, port, source.port)
        before = await run_cli(["prefetch", "--status", "--config", str(config)])
        done = await run_cli(["prefetch", "CLI1", "--config", str(config)], timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        again = await run_cli(["prefetch", "CLI1", "--lookback", "400", "--config", str(config)], timeout=120)
    assert before.returncode == 0 and before.stdout.decode().startswith("no prefetch yet")
    summary = SUMMARY.fullmatch(done.stdout.decode().strip())
    assert summary, done.stdout
    assert summary["counts"] == "1 patients, 1 studies prefetched (2 series, 4 instances"
    assert int(summary["bytes"]) > 4 * 500_000  # four 512x512 CT images
    assert summary["rest"] == "0 already present, 0 failed, 0 queries failed"
    progress = [line for line in done.stderr.decode().splitlines() if line.startswith("study ")]
    assert len(progress) == 1 and progress[0].endswith(" from QRSCP: 2 series, 4 instances, " + progress[0].rsplit(", ", 1)[1])
    again_progress = [line for line in again.stderr.decode().splitlines() if line.startswith("study ")]
    assert len(again_progress) == 1 and ": 1 series, 2 instances, " in again_progress[0]  # the MR; the CT was skipped
    # The longer lookback reaches the MR; the CT is here already.
    again_summary = SUMMARY.fullmatch(again.stdout.decode().strip())
    assert again_summary["counts"] == "1 patients, 1 studies prefetched (1 series, 2 instances"
    assert again_summary["rest"] == "1 already present, 0 failed, 0 queries failed"

    async with served_node(tmp_path) as node:  # the same data directory, now served
        status = await run_cli(["prefetch", "--status", "--config", str(config)])
        refused = await run_cli(["prefetch", "CLI1", "--config", str(config)])
    lines = status.stdout.decode().splitlines()
    assert status.returncode == 0 and lines[0] == "queue: 0 patients to query, 0 studies to retrieve"
    assert lines[1].startswith("cumulative (2 cycles): 2 patients, 2 studies prefetched (3 series, 6 instances")
    assert lines[2].startswith("last cycle: request-") and "(request)" in lines[2]
    assert refused.returncode == 2
    (line,) = refused.stderr.decode().splitlines()
    assert f"in use by another node (pid {node.process.pid})" in line and "prefetches by itself" in line
