//! Borrowed 8-bit grey images: what every metric takes.

use crate::MetricsError;

/// A row-major 8-bit grey image borrowed from the caller (a PNG decoded to `L8`, or a
/// prediction quantised to 0–255).
#[derive(Clone, Copy, Debug)]
pub struct GrayView<'a> {
    pixels: &'a [u8],
    width: usize,
    height: usize,
}

impl<'a> GrayView<'a> {
    /// `pixels` must hold exactly `width * height` values, row by row.
    pub fn new(pixels: &'a [u8], width: usize, height: usize) -> Result<Self, MetricsError> {
        if width == 0 || height == 0 {
            return Err(MetricsError::EmptyImage { width, height });
        }
        if pixels.len() != width * height {
            return Err(MetricsError::BufferSize {
                len: pixels.len(),
                width,
                height,
            });
        }
        Ok(Self {
            pixels,
            width,
            height,
        })
    }

    pub fn pixels(&self) -> &'a [u8] {
        self.pixels
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub(crate) fn same_size(&self, other: &GrayView<'_>) -> Result<(), MetricsError> {
        if (self.width, self.height) == (other.width, other.height) {
            Ok(())
        } else {
            Err(MetricsError::SizeMismatch {
                pred: (self.width, self.height),
                gt: (other.width, other.height),
            })
        }
    }
}
