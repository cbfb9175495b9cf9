//! Segmentation metrics identical to PySODMetrics, without libtorch.
