//! ZoomNeXt's input: three zoom scales of each frame (0.5×, 1× and 1.5× of the base size). This
//! module says which sizes the network reads; the pixels are made by the data crate
//! (`fgstp_data::opencv::zoom_pyramid`: OpenCV's INTER_LINEAR of the **uint8** frame, bit for
//! bit, then `/ 255`), as the reference's data pipeline makes them (`ms_resize`). A float
//! bilinear resize of an already-normalised frame would differ by up to ~1e-2 in probability.

/// The zoom factors of the three inputs, small to large (the reference's `ms_resize` scales).
pub const ZOOM_SCALES: [f64; 3] = [0.5, 1.0, 1.5];

/// `int(base * s)` for each zoom scale, as (height, width): Python truncation, so a 97-pixel base
/// gives 48, 97 and 145.
pub fn zoom_sizes(base_h: usize, base_w: usize) -> [(usize, usize); 3] {
    ZOOM_SCALES.map(|s| ((base_h as f64 * s) as usize, (base_w as f64 * s) as usize))
}
