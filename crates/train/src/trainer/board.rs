//! TensorBoard event files, written with tensorboard-rs.

use anyhow::{Context, Result};
use image::RgbImage;
use protobuf::RepeatedField;
use std::path::Path;
use tensorboard_proto::summary::{Summary, Summary_Image, Summary_Value};
use tensorboard_rs::summary_writer::FileWriter;

pub struct Board {
    writer: FileWriter,
}

impl Board {
    /// Opens a new event file in `dir` (created if needed). tensorboard-rs panics on I/O
    /// errors inside its writer thread, so the directory is created and checked here first.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the TensorBoard directory {}", dir.display())
        })?;
        let probe = dir.join(".fgstp-write-test");
        std::fs::write(&probe, b"")
            .with_context(|| format!("cannot write TensorBoard events into {}", dir.display()))?;
        let _ = std::fs::remove_file(probe);
        Ok(Self {
            writer: FileWriter::new(dir),
        })
    }

    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) {
        let summary = tensorboard_rs::summary::scalar(tag, value as f32);
        self.writer.add_summary(summary, step as usize);
    }

    /// An RGB image. Built here rather than with tensorboard-rs's `add_image`, which swaps
    /// width and height for non-square images.
    pub fn image(&mut self, tag: &str, image: &RgbImage, step: u64) -> Result<()> {
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .context("cannot encode a TensorBoard image")?;
        let mut encoded = Summary_Image::new();
        encoded.set_height(image.height() as i32);
        encoded.set_width(image.width() as i32);
        encoded.set_colorspace(3);
        encoded.set_encoded_image_string(png);
        let mut value = Summary_Value::new();
        value.set_tag(tag.to_string());
        value.set_image(encoded);
        let mut summary = Summary::new();
        summary.set_value(RepeatedField::from(vec![value]));
        self.writer.add_summary(summary, step as usize);
        Ok(())
    }

    pub fn flush(&mut self) {
        self.writer.flush();
    }
}
