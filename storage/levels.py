"""Which information entity (patient, study, series, instance) an attribute belongs to.

The index keeps each entity's attributes as DICOM JSON on the entity's own row, so a
C-FIND at any level can return any attribute of that level or above. The split follows
the DICOM information model (PS3.3 modules by IE; equipment is kept with the series,
as every Query/Retrieve model does): patient = group 0010 except the Patient Study
module; study and series = the lists below; everything else = instance.
"""

from __future__ import annotations

import enum

from pydicom.datadict import tag_for_keyword


class Level(enum.IntEnum):
    """Query/Retrieve levels, ordered from the top of the hierarchy down."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3

    @classmethod
    def from_dicom(cls, text: str) -> Level:
        return cls[text.strip().upper()]


def _tags(keywords: str) -> frozenset[int]:
    tags = set()
    for keyword in keywords.split():
        tag = tag_for_keyword(keyword)
        if tag is None:  # pragma: no cover - caught by the tests at import
            raise KeyError(keyword)
        tags.add(tag)
    return frozenset(tags)


# Group 0010 attributes of the Patient Study module: they describe the patient at the
# time of one study, so they live with the study.
PATIENT_STUDY_TAGS = _tags(
    """PatientAge PatientSize PatientSizeCodeSequence PatientBodyMassIndex MeasuredAPDimension
    MeasuredLateralDimension PatientWeight Occupation AdditionalPatientHistory SmokingStatus
    PregnancyStatus LastMenstrualDate PatientSexNeutered"""
)

STUDY_TAGS = PATIENT_STUDY_TAGS | _tags(
    """StudyInstanceUID StudyDate StudyTime AccessionNumber IssuerOfAccessionNumberSequence StudyID
    StudyDescription ReferringPhysicianName ReferringPhysicianIdentificationSequence
    ConsultingPhysicianName ConsultingPhysicianIdentificationSequence PhysiciansOfRecord
    PhysiciansOfRecordIdentificationSequence NameOfPhysiciansReadingStudy
    PhysiciansReadingStudyIdentificationSequence ProcedureCodeSequence RequestingService
    AdmittingDiagnosesDescription AdmittingDiagnosesCodeSequence ReasonForPerformedProcedureCodeSequence
    ReferencedStudySequence AdmissionID IssuerOfAdmissionIDSequence ServiceEpisodeID
    ServiceEpisodeDescription IssuerOfServiceEpisodeIDSequence PatientState ReasonForVisit
    ReasonForVisitCodeSequence OtherStudyNumbers"""
)

SERIES_TAGS = _tags(
    """SeriesInstanceUID Modality SeriesNumber SeriesDescription SeriesDescriptionCodeSequence SeriesDate
    SeriesTime Laterality BodyPartExamined ProtocolName OperatorsName OperatorIdentificationSequence
    PerformingPhysicianName PerformingPhysicianIdentificationSequence PatientPosition
    AnatomicalOrientationType SmallestPixelValueInSeries LargestPixelValueInSeries
    PerformedProcedureStepID PerformedProcedureStepStartDate PerformedProcedureStepStartTime
    PerformedProcedureStepEndDate PerformedProcedureStepEndTime PerformedProcedureStepDescription
    PerformedProtocolCodeSequence RequestAttributesSequence ReferencedPerformedProcedureStepSequence
    RelatedSeriesSequence Manufacturer InstitutionName InstitutionAddress StationName
    InstitutionalDepartmentName ManufacturerModelName DeviceSerialNumber SoftwareVersions
    DateOfLastCalibration TimeOfLastCalibration"""
)

# Keys the SCP computes from the index rather than stores (PS3.4 C.6.1.1 / C.6.2.1).
COMPUTED_KEYS: dict[int, Level] = {
    tag_for_keyword("NumberOfPatientRelatedStudies"): Level.PATIENT,
    tag_for_keyword("NumberOfPatientRelatedSeries"): Level.PATIENT,
    tag_for_keyword("NumberOfPatientRelatedInstances"): Level.PATIENT,
    tag_for_keyword("NumberOfStudyRelatedSeries"): Level.STUDY,
    tag_for_keyword("NumberOfStudyRelatedInstances"): Level.STUDY,
    tag_for_keyword("ModalitiesInStudy"): Level.STUDY,
    tag_for_keyword("SOPClassesInStudy"): Level.STUDY,
    tag_for_keyword("NumberOfSeriesRelatedInstances"): Level.SERIES,
}

# Attributes about the query itself or the response, valid at every level, never matched.
QUERY_CONTROL_TAGS = _tags(
    """QueryRetrieveLevel SpecificCharacterSet TimezoneOffsetFromUTC QueryRetrieveView
    RetrieveAETitle InstanceAvailability"""
)


def stored_level(tag: int) -> Level:
    """The entity whose row stores this attribute."""
    if tag in STUDY_TAGS:
        return Level.STUDY
    if tag in SERIES_TAGS:
        return Level.SERIES
    if tag >> 16 == 0x0010:
        return Level.PATIENT
    return Level.IMAGE


def key_level(tag: int, *, study_root: bool) -> Level:
    """The level at which a key may be matched in a model: in Study Root the patient's
    attributes are study-level keys (there is no patient level)."""
    level = COMPUTED_KEYS.get(tag)
    if level is None:
        level = stored_level(tag)
    if study_root and level is Level.PATIENT:
        return Level.STUDY
    return level
