"""C-GET of every stored transfer syntax: as stored when the requestor takes it, else
converted (decompressed, byte order swapped, inflated) into a syntax it takes.

The node chooses the syntax of each storage context it will send on by what it holds
(protocol/sending_syntaxes.py). To see each syntax on its own, the first tests give
every pydicom sample a SOP class of its own, so that the node holds each class in one
syntax only; the mixed tests keep pydicom's MR image in six encodings under one class.
Requestors: DCMTK getscu with each of its "prefer" options, `triopacs get`, pynetdicom
with one context per syntax, and triopacs' client taking a syntax the node cannot make.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import trio
from cli_process import run_cli
from dicom_samples import build_mixed_folder, uid_from
from peers.dcmtk import run_dcmtk
from pydicom.data import get_testdata_file

from triopacs import connect
from triopacs.client.contexts import query_retrieve_contexts, storage_contexts_for
from triopacs.client.errors import OperationFailed
from triopacs.protocol.negotiation import ProposedContext

from .nodes import AE_TITLE, LOOPBACK, dataset_bytes, running_node, stored_files

ELE, ILE, EBE, DEFLATE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
JPEG_BASELINE, JPEG_EXTENDED, JPEG_SV1 = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70"
JPEG_LS, J2K_LOSSLESS, J2K, RLE = "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5"
MR = "1.2.840.10008.5.1.4.1.1.4"


@dataclass(frozen=True)
class Case:
    syntax: str
    sample: str  # pydicom test file stored in that syntax
    sop_class: str  # given to the sample so that no other syntax shares its class
    getscu_option: str  # makes getscu propose the syntax, first where it can


CASES = [
    Case(ELE, "CT_small.dcm", "1.2.840.10008.5.1.4.1.1.2", "+xe"),
    # getscu 3.6.7's +xi proposes explicit VR little endian alone; its default lists
    # implicit VR third, and the node takes it because that is what it holds of the class.
    Case(ILE, "MR_small_implicit.dcm", MR, "+x="),
    Case(EBE, "MR_small_bigendian.dcm", "1.2.840.10008.5.1.4.1.1.1", "+xb"),  # CR
    Case(DEFLATE, "image_dfl.dcm", "1.2.840.10008.5.1.4.1.1.1.2", "+xd"),  # MG
    Case(JPEG_BASELINE, "SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.5.1.4.1.1.7", "+xy"),  # SC
    Case(JPEG_EXTENDED, "JPGExtended.dcm", "1.2.840.10008.5.1.4.1.1.6.1", "+xx"),  # US
    Case(JPEG_SV1, "SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.5.1.4.1.1.77.1.4", "+xs"),  # VL photographic
    Case(JPEG_LS, "MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.5.1.4.1.1.128", "+xt"),  # PET
    Case(J2K_LOSSLESS, "MR_small_jp2klossless.dcm", "1.2.840.10008.5.1.4.1.1.12.1", "+xv"),  # XA
    Case(J2K, "JPEG2000.dcm", "1.2.840.10008.5.1.4.1.1.1.1", "+xw"),  # DX
    Case(RLE, "MR_small_RLE.dcm", "1.2.840.10008.5.1.4.1.1.20", "+xr"),  # NM
]
STUDY = uid_from("get-syntaxes", "study")


def write_cases(folder: Path) -> dict[str, Case]:
    """One file per case, all in one study; {SOP Instance UID: case}."""
    folder.mkdir(parents=True)
    written = {}
    for case in CASES:
        dataset = pydicom.dcmread(get_testdata_file(case.sample))
        uid = uid_from("get-syntaxes", case.syntax)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = case.sop_class
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = uid
        dataset.PatientID, dataset.StudyInstanceUID = "GETSYNTAX", STUDY
        dataset.SeriesInstanceUID = uid_from("get-syntaxes", case.syntax, "series")
        dataset.save_as(folder / f"{case.sample}", enforce_file_format=True)  # keeps its transfer syntax
        written[uid] = case
    return written


async def store(node, files: list[Path]) -> None:
    contexts = storage_contexts_for(files)
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
        assert all([(await association.store(path)).ok for path in files])


def by_uid(paths) -> dict[str, Path]:
    return {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): path for path in paths}


def same_pixels(received: Path, original: Path) -> bool:
    """What pydicom decodes from both (colour converted to RGB, as the node does) agrees."""
    return (pydicom.dcmread(received).pixel_array == pydicom.dcmread(original).pixel_array).all()


def folder(case: Case) -> str:
    return "getscu" + case.getscu_option.strip("+=")


async def getscu(node, into: Path, *options: str) -> str:
    into.mkdir()
    tool = await run_dcmtk(
        "getscu", "-v", "-S", "+B", *options, "-aet", "GETSCU", "-aec", AE_TITLE, "-od", str(into),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}", LOOPBACK, str(node.address.port),
        timeout=120, cwd=into,
    )
    return tool.output


async def test_each_stored_syntax_reaches_getscu_as_stored_when_it_prefers_it(tmp_path):
    cases = write_cases(tmp_path / "source")
    async with running_node(tmp_path) as node:
        await store(node, sorted((tmp_path / "source").iterdir()))
        stored = by_uid(stored_files(node))
        outputs = {}
        for case in CASES:
            outputs[case.syntax] = await getscu(node, tmp_path / folder(case), case.getscu_option)
    problems = []
    for case in CASES:
        output = outputs[case.syntax]
        if "Number of Completed Suboperations : 11" not in output:
            problems.append(f"{case.getscu_option}: not all 11 sub-operations completed:\n{output}")
            continue
        received = by_uid((tmp_path / folder(case)).iterdir())
        for uid, other in cases.items():
            syntax, data = dataset_bytes(received[uid])
            if other is case:  # the syntax getscu asked for first: sent as stored
                if (syntax, data) != dataset_bytes(stored[uid]):
                    problems.append(f"{case.getscu_option}: {other.sample} not as stored (arrived in {syntax})")
            elif syntax != other.syntax and not same_pixels(received[uid], stored[uid]):
                problems.append(f"{case.getscu_option}: {other.sample} converted to {syntax} with other pixels")
    assert not problems, "\n".join(problems)


async def test_triopacs_get_fetches_every_stored_syntax_as_stored(tmp_path):
    write_cases(tmp_path / "source")
    into = tmp_path / "got"
    async with running_node(tmp_path) as node:
        await store(node, sorted((tmp_path / "source").iterdir()))
        stored = by_uid(stored_files(node))
        result = await run_cli(["get", LOOPBACK, str(node.address.port), "--level", "STUDY", "-k", f"StudyInstanceUID={STUDY}", "-o", str(into)])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().splitlines()[0] == "C-GET: completed 11, failed 0, warning 0; status 0x0000 Success"
    received = by_uid(into.iterdir())
    assert sorted(received) == sorted(stored)
    assert {uid: dataset_bytes(path) for uid, path in received.items()} == {uid: dataset_bytes(path) for uid, path in stored.items()}


# ---------------------------------------------------------------- one SOP class in six syntaxes

MR_VARIANTS = {
    "MR_small.dcm": ELE,
    "MR_small_implicit.dcm": ILE,
    "MR_small_bigendian.dcm": EBE,
    "MR_small_RLE.dcm": RLE,
    "MR_small_jpeg_ls_lossless.dcm": JPEG_LS,
    "MR_small_jp2klossless.dcm": J2K_LOSSLESS,
}


@pytest.fixture
def mr_variants(tmp_path):
    """pydicom's MR image in six syntaxes, each its own instance of one study."""
    samples = build_mixed_folder(tmp_path / "mr", names=list(MR_VARIANTS))
    assert len({s.study_instance_uid for s in samples}) == 1
    return samples


async def test_one_class_in_six_syntaxes_over_getscu_triopacs_get_and_pynetdicom(tmp_path, mr_variants):
    study = mr_variants[0].study_instance_uid
    syntax_of = {s.sop_instance_uid: s.transfer_syntax_uid for s in mr_variants}
    async with running_node(tmp_path) as node:
        await store(node, [s.path for s in mr_variants])
        stored = by_uid(stored_files(node))
        # getscu's default: one MR context offering the uncompressed syntaxes.
        (tmp_path / "getscu").mkdir()
        tool = await run_dcmtk(
            "getscu", "-v", "-S", "+B", "-aet", "GETSCU", "-aec", AE_TITLE, "-od", str(tmp_path / "getscu"),
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", LOOPBACK, str(node.address.port),
            timeout=60, cwd=tmp_path / "getscu",
        )
        cli = await run_cli(["get", LOOPBACK, str(node.address.port), "--level", "STUDY", "-k", f"StudyInstanceUID={study}", "-o", str(tmp_path / "cli")])
        # pynetdicom: one MR context per syntax, as its users write them.
        pynetdicom = await pynetdicom_get(node, study, tmp_path / "pynetdicom", [f"{MR}={syntax}" for syntax in MR_VARIANTS.values()])

    def arrived(folder: Path) -> dict[str, str]:
        """{stored syntax: the syntax it arrived in}, checking the pixels of every conversion."""
        outcome = {}
        for uid, path in by_uid(folder.iterdir()).items():
            syntax, data = dataset_bytes(path)
            if syntax == syntax_of[uid]:
                assert (syntax, data) == dataset_bytes(stored[uid]), f"{syntax} not as stored"
            else:
                assert same_pixels(path, stored[uid]), f"{syntax_of[uid]} -> {syntax}: other pixels"
            outcome[syntax_of[uid]] = syntax
        return outcome

    assert "Number of Completed Suboperations : 6" in tool.output, tool.output
    # One context, six syntaxes held: explicit VR little endian carries them all.
    assert arrived(tmp_path / "getscu") == {syntax: ELE for syntax in MR_VARIANTS.values()}

    assert cli.returncode == 0, cli.stderr.decode()
    # Three contexts (uncompressed, lossy first, lossless first): three go as stored.
    assert arrived(tmp_path / "cli") == {ELE: ELE, JPEG_LS: JPEG_LS, J2K_LOSSLESS: J2K_LOSSLESS, ILE: ELE, EBE: ELE, RLE: ELE}

    assert pynetdicom["statuses"][-1] == 0x0000, pynetdicom
    # A context per syntax: every instance goes as stored.
    assert arrived(tmp_path / "pynetdicom") == {syntax: syntax for syntax in MR_VARIANTS.values()}


async def test_a_syntax_the_node_cannot_make_fails_the_sub_operation_with_the_reason(tmp_path, mr_variants):
    plain = next(s for s in mr_variants if s.transfer_syntax_uid == ELE)
    contexts = [
        *query_retrieve_contexts("study", find=False, move=False),
        ProposedContext(abstract_syntax=MR, transfer_syntaxes=(JPEG_BASELINE,), scu_role=True, scp_role=True),
    ]
    async with running_node(tmp_path) as node:
        await store(node, [plain.path])
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
            query = pydicom.Dataset()
            query.StudyInstanceUID = plain.study_instance_uid
            with pytest.raises(OperationFailed) as failed:
                async for _progress in association.get(query, tmp_path / "got", level="STUDY"):
                    pass
    assert failed.value.status == 0xA702
    assert failed.value.progress.failed_sop_instance_uids == (plain.sop_instance_uid,)
    assert failed.value.error_comment == f"stored TS {ELE} not accepted, not convertible"


SCRIPT = Path(__file__).with_name("pynetdicom_scu.py")


async def pynetdicom_get(node, study: str, into: Path, contexts: list[str]) -> dict:
    into.mkdir()
    argv = [sys.executable, str(SCRIPT), str(node.address.port), AE_TITLE, "get", "--level", "STUDY", "--into", str(into)]
    argv += [f"--context={context}" for context in contexts] + [f"StudyInstanceUID={study}"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDEVMODE"}
    with trio.fail_after(60):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)
