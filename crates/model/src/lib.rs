//! FGSTP model: PVTv2 encoder, RFB, CTC correlation, FSP, NCD + reverse-stage decoder.
