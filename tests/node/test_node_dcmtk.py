"""DCMTK clients -> an in-process node: C-ECHO and C-STORE, checked on disk and in the index."""

from dataclasses import replace

import pydicom
from dicom_samples import SeriesSpec, build_mixed_folder, write_series
from peers import echoscu, storescp, storescu

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for, verification_contexts

from .nodes import AE_TITLE, LOOPBACK, counts, dataset_bytes, index_rows, leftovers, peer, running_node, stored_files


async def test_echoscu_gets_success(tmp_path):
    async with running_node(tmp_path) as node:
        result = await echoscu(peer(node))
    result.check()
    assert "Received Echo Response (Success)" in result.output


async def test_echoscu_calling_the_wrong_ae_title_is_rejected(tmp_path):
    # The node only answers to its own AE title: proves the echo above is not a fluke.
    async with running_node(tmp_path) as node:
        wrong = replace(peer(node), ae_title="SOMEONEELSE")
        result = await echoscu(wrong)
    assert result.returncode != 0
    assert "Association Rejected" in result.output


async def test_storescu_mixed_folder_is_kept_as_received_in_its_transfer_syntax(tmp_path):
    # storescu re-encodes what it reads (drops group lengths, changes padding), so "as
    # received" is checked against DCMTK's own bit-preserving storescp (+B) fed by the
    # same storescu: both must hold the very bytes storescu put on the wire.
    samples = build_mixed_folder(tmp_path / "mixed")
    assert len(samples) == 22
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as reference:
        (await storescu(reference, [tmp_path / "mixed"])).check(expected=22)
        async with running_node(tmp_path) as node:
            (await storescu(peer(node), [tmp_path / "mixed"])).check(expected=22)
            totals = await counts(node)
            rows = dict(index_rows(node, "SELECT sop_instance_uid, transfer_syntax_uid FROM instance"))
            assert leftovers(node) == []
        wire = {_sop_instance_uid(path): dataset_bytes(path) for path in reference.stored_files()}
    stored = {_sop_instance_uid(path): path for path in stored_files(node)}
    assert sorted(stored) == sorted(s.sop_instance_uid for s in samples)
    for sample in samples:
        path = stored[sample.sop_instance_uid]
        # UID layout: files/<study>/<series>/<sop>.dcm
        assert path.relative_to(node.config.data_dir / "files").parts == (
            sample.study_instance_uid, sample.series_instance_uid, f"{sample.sop_instance_uid}.dcm"
        )
        syntax, kept = dataset_bytes(path)
        assert (syntax, rows[sample.sop_instance_uid]) == (sample.transfer_syntax_uid,) * 2, sample.source
        assert (syntax, kept) == wire[sample.sop_instance_uid], f"{sample.source}: not stored as received"
    _check_counts(totals, samples, stored.values(), node)


async def test_client_mixed_folder_is_kept_byte_for_byte(tmp_path):
    # The triopacs client streams a file's dataset bytes as they are on disk, so here the
    # stored dataset must equal the source file's, byte for byte, in the same syntax.
    samples = build_mixed_folder(tmp_path / "mixed")
    files = [sample.path for sample in samples]
    async with running_node(tmp_path) as node:
        contexts = [*verification_contexts(), *storage_contexts_for(files)]
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
            results = [await association.store(path) for path in files]
        totals = await counts(node)
        assert leftovers(node) == []
    assert [(r.status, r.converted) for r in results] == [(0, False)] * 22
    stored = {_sop_instance_uid(path): path for path in stored_files(node)}
    for sample in samples:
        syntax, source = dataset_bytes(sample.path)
        # image_dfl.dcm's deflated stream has an odd length; DIMSE fragments are even, so
        # it goes out (and is kept) with the one trailing NUL PS3.5 A.5 asks for.
        sent = source + b"\0" * (len(source) % 2)
        assert dataset_bytes(stored[sample.sop_instance_uid]) == (syntax, sent), sample.source
    _check_counts(totals, samples, stored.values(), node)


def _sop_instance_uid(path):
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _check_counts(totals, samples, files, node):
    assert totals.instances == len(samples) == len(index_rows(node, "SELECT pk FROM instance"))
    assert totals.series == len({s.series_instance_uid for s in samples})
    assert totals.studies == len({s.study_instance_uid for s in samples})
    assert totals.patients == len(index_rows(node, "SELECT pk FROM patient")) >= 1
    assert totals.total_bytes == sum(path.stat().st_size for path in files)


async def test_storescu_generated_ct_and_mr_series(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.1"
    ct = write_series(tmp_path / "gen", SeriesSpec(count=4, modality="CT", study_instance_uid=study))
    mr = write_series(tmp_path / "gen", SeriesSpec(count=3, modality="MR", study_instance_uid=study, series_number=2))
    async with running_node(tmp_path) as node:
        (await storescu(peer(node), [tmp_path / "gen"])).check(expected=7)
        totals = await counts(node)
        series = index_rows(
            node,
            "SELECT se.series_instance_uid, se.modality, count(i.pk) FROM series se "
            "JOIN instance i ON i.series_pk = se.pk GROUP BY se.pk ORDER BY se.series_number",
        )
        files = stored_files(node)
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (1, 1, 2, 7)
    assert series == [(ct.series_instance_uid, "CT", 4), (mr.series_instance_uid, "MR", 3)]
    kept = {path.stem: dataset_bytes(path)[1] for path in files}
    for generated in (ct, mr):
        for uid, source in zip(generated.sop_instance_uids, generated.paths):
            assert kept[uid] == dataset_bytes(source)[1]
