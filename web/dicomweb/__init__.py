"""DICOMweb (PS3.18): QIDO-RS, WADO-RS and STOW-RS on the node's HTTP server, over the
same index, storage tiers and study locks as DIMSE. docs/dicomweb.md describes it."""
