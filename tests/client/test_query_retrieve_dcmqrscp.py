"""C-FIND, C-MOVE and C-GET against DCMTK dcmqrscp (moving to a DCMTK storescp), and
C-CANCEL when the caller stops early."""

import pytest
import trio
from dicom_samples import SeriesSpec, write_population, write_series

from triopacs.client.connection import AssociationRejected, OperationFailed, ReceivedInstance
from triopacs.client.contexts import verification_contexts

from .helpers import assert_same_datasets, by_instance_uid, client_for, populated_qrscp, query, wait_for_log


def uids(matches, keyword: str) -> set[str]:
    return {str(getattr(match, keyword)) for match in matches}


async def test_find_at_every_level_in_both_models(tmp_path):
    population = write_population(tmp_path / "population")
    first = population[0]  # patient TRIO0001, its first study, first series
    in_first_study = [s for s in population if s.study_instance_uid == first.study_instance_uid]
    async with populated_qrscp(tmp_path, population) as (qr, _destination):
        async with client_for(qr) as association:

            async def find(level, model, **keys):
                return [match async for match in association.find(query(**keys), level=level, model=model)]

            patients = await find("PATIENT", "patient", PatientID="", PatientName="")
            assert {(m.PatientID, str(m.PatientName)) for m in patients} == {("TRIO0001", "DOE^JANE"), ("TRIO0002", "ROE^RICHARD")}
            studies = await find("STUDY", "patient", PatientID="TRIO0001", StudyInstanceUID="")
            assert uids(studies, "StudyInstanceUID") == {s.study_instance_uid for s in population if s.spec.patient_id == "TRIO0001"}
            series = await find("SERIES", "patient", PatientID="TRIO0001", StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID="", Modality="")
            assert {(m.SeriesInstanceUID, m.Modality) for m in series} == {(s.series_instance_uid, s.spec.modality) for s in in_first_study}
            images = await find(
                "IMAGE", "patient", PatientID="TRIO0001", StudyInstanceUID=first.study_instance_uid,
                SeriesInstanceUID=first.series_instance_uid, SOPInstanceUID="",
            )
            assert uids(images, "SOPInstanceUID") == set(first.sop_instance_uids)

            studies = await find("STUDY", "study", StudyInstanceUID="", StudyDate="")
            assert uids(studies, "StudyInstanceUID") == {s.study_instance_uid for s in population}
            january_2 = await find("STUDY", "study", StudyInstanceUID="", StudyDate="20240102-20240102")
            assert uids(january_2, "StudyInstanceUID") == {s.study_instance_uid for s in population if s.spec.study_date == "20240102"}
            series = await find("SERIES", "study", StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID="")
            assert uids(series, "SeriesInstanceUID") == {s.series_instance_uid for s in in_first_study}
            images = await find("IMAGE", "study", StudyInstanceUID=first.study_instance_uid, SeriesInstanceUID=first.series_instance_uid, SOPInstanceUID="")
            assert uids(images, "SOPInstanceUID") == set(first.sop_instance_uids)


async def test_a_wrong_called_ae_title_is_rejected(dcmqrscp_peer):
    with pytest.raises(AssociationRejected) as caught:
        async with client_for(type("Wrong", (), {"port": dcmqrscp_peer.port, "ae_title": "NOT_QRSCP"})()):
            pass
    assert caught.value.permanent
    assert "called AE title not recognized" in str(caught.value)


async def test_move_a_study_to_storescp(tmp_path):
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),))
    study = [s for s in population if s.study_instance_uid == population[0].study_instance_uid]
    expected = {uid for s in study for uid in s.sop_instance_uids}
    async with populated_qrscp(tmp_path, population) as (qr, destination):
        async with client_for(qr) as association:
            progress = [p async for p in association.move(query(StudyInstanceUID=study[0].study_instance_uid), destination.ae_title, level="STUDY")]
        assert set(by_instance_uid(destination.stored_files())) == expected
    final = progress[-1]
    assert final.final and final.ok and final.status == 0
    assert (final.completed, final.failed, final.warning) == (len(expected), 0, 0)
    assert all(not p.final for p in progress[:-1]) and progress[0].remaining == len(expected) - 1


async def test_move_to_an_unknown_destination_fails_with_its_status(tmp_path):
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),), studies_per_patient=1)
    async with populated_qrscp(tmp_path, population) as (qr, _destination):
        async with client_for(qr) as association:
            with pytest.raises(OperationFailed) as caught:
                async for _ in association.move(query(StudyInstanceUID=population[0].study_instance_uid), "NOWHERE", level="STUDY"):
                    pass
            await association.echo()  # a failed operation leaves the association usable
    assert caught.value.status == 0xA801 and "destination unknown" in str(caught.value)


async def test_get_a_series_into_a_folder_and_to_a_callback(tmp_path):
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),), studies_per_patient=1)
    wanted = population[0]
    key = query(StudyInstanceUID=wanted.study_instance_uid, SeriesInstanceUID=wanted.series_instance_uid)
    collected: list[ReceivedInstance] = []
    async with populated_qrscp(tmp_path, population) as (qr, _destination):
        async with client_for(qr) as association:
            into_folder = [p async for p in association.get(key, tmp_path / "got", level="SERIES")]
            to_callback = [p async for p in association.get(key, collected.append, level="SERIES")]
    files = sorted((tmp_path / "got").iterdir())
    assert [f.name for f in files] == sorted(f"{uid}.dcm" for uid in wanted.sop_instance_uids)  # no temp files left
    assert_same_datasets(by_instance_uid(wanted.paths), by_instance_uid(files))
    assert into_folder[-1].ok and into_folder[-1].received == len(wanted.paths) == into_folder[-1].completed
    assert to_callback[-1].ok and to_callback[-1].received == len(collected) == len(wanted.paths)
    assert_same_datasets(by_instance_uid(wanted.paths), {i.sop_instance_uid: i.dataset() for i in collected})


async def test_leaving_a_find_early_sends_c_cancel_then_releases(tmp_path):
    series = write_series(tmp_path / "population", SeriesSpec(count=30, modality="MR"))
    async with populated_qrscp(tmp_path, [series]) as (qr, _destination):
        async with client_for(qr) as association:
            matches = association.find(query(StudyInstanceUID=series.study_instance_uid, SeriesInstanceUID=series.series_instance_uid, SOPInstanceUID=""), level="IMAGE")
            async for _ in matches:
                break  # leave with 29 matches unread: leaving the block cancels
        # dcmqrscp saw the C-CANCEL: it either stopped (Cancel status) or, had it already
        # sent every match, says the cancel came late.
        log = await wait_for_log(qr, "MatchingTerminatedDueToCancelRequest", "late C-CANCEL-RQ")
        assert (matches.final_status == 0xFE00) == ("MatchingTerminatedDueToCancelRequest" in log)
        log = await wait_for_log(qr, "Association Release")
        assert "Abort" not in log
        async with client_for(qr, contexts=verification_contexts()) as association:
            await association.echo()


async def test_cancelling_the_callers_scope_cancels_a_move(tmp_path):
    series = write_series(tmp_path / "population", SeriesSpec(count=24))
    async with populated_qrscp(tmp_path, [series]) as (qr, destination):
        with trio.CancelScope() as scope:
            async with client_for(qr) as association:
                moves = association.move(query(StudyInstanceUID=series.study_instance_uid), destination.ae_title, level="STUDY")
                async for progress in moves:
                    scope.cancel()  # from the first Pending response on, we are being cancelled
        assert scope.cancelled_caught
        assert moves.final_status == 0xFE00  # the peer stopped on our C-CANCEL
        assert 0 < len(destination.stored_files()) < 24
        log = await wait_for_log(qr, "Association Release")
        assert "SubOperationsTerminatedDueToCancelIndication" in log and "Abort" not in log
