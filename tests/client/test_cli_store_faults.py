"""`triopacs store` with broken files and a peer that aborts on one of them: broken files
are skipped with their reason before anything is sent, an abort costs the file in flight
only (the rest go over a new association), and the summary says which failed and why."""

import shutil

from cli_process import run_cli
from dicom_samples import build_mixed_folder
from peers.dicom_servers import pynetdicom_scp
from pydicom.data import get_testdata_file

from .helpers import LOOPBACK, by_instance_uid


async def test_store_skips_broken_files_and_goes_on_after_an_abort(tmp_path):
    folder = tmp_path / "upload"
    samples = build_mixed_folder(folder, names=["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "rtplan.dcm", "test-SR.dcm"])
    shutil.copy(get_testdata_file("MR_truncated.dcm"), folder / "MR_truncated.dcm")  # pixel data cut short
    shutil.copy(get_testdata_file("rtplan_truncated.dcm"), folder / "rtplan_truncated.dcm")  # odd length
    (folder / "notes.txt").write_text("not DICOM")
    victim = next(s for s in samples if s.source == "MR_small.dcm")  # the second one sent
    async with pynetdicom_scp(abort_on=[victim.sop_instance_uid], parent_dir=tmp_path) as peer:
        result = await run_cli(["store", LOOPBACK, str(peer.port), "--aec", peer.ae_title, str(folder)])
        stored = set(by_instance_uid(peer.stored_files()))
    out, err = result.stdout.decode().splitlines(), result.stderr.decode()
    assert result.returncode == 1, err
    assert out[0].startswith("sent 4 of 7 files, ")
    assert out[1:] == [
        "failed 1:",
        f"  {victim.path}: association aborted: the peer aborted it (service user)",
        "skipped 2 DICOM files that cannot be sent:",
        f"  {folder / 'MR_truncated.dcm'}: the dataset ends inside (7FE0,0010) (at byte 9296): 62 of its 8192 bytes are missing",
        f"  {folder / 'rtplan_truncated.dcm'}: the dataset is 1829 bytes long; DICOM datasets have an even, non-zero length",
        "skipped 1 non-DICOM files",
    ]
    assert "association aborted: the peer aborted it (service user): reconnecting for the other 3 files" in err
    assert stored == {s.sop_instance_uid for s in samples if s is not victim}


async def test_a_peer_that_aborts_every_time_is_given_up_after_three_aborts(tmp_path):
    folder = tmp_path / "upload"
    samples = build_mixed_folder(folder, names=["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "rtplan.dcm", "test-SR.dcm"])
    async with pynetdicom_scp(abort_on=[s.sop_instance_uid for s in samples], parent_dir=tmp_path) as peer:
        result = await run_cli(["store", LOOPBACK, str(peer.port), "--aec", peer.ae_title, str(folder)])
        stored = peer.stored_files()
    out = result.stdout.decode().splitlines()
    assert result.returncode == 1
    assert out[0].startswith("sent 0 of 5 files")
    reasons = [line.split(": ", 1)[1] for line in out[2:]]
    assert reasons[:3] == ["association aborted: the peer aborted it (service user)"] * 3
    assert reasons[3:] == ["not sent: the association ended 3 times in a row (association aborted: the peer aborted it (service user))"] * 2
    assert stored == []
