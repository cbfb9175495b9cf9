//! 4:2:0 planes and the RGB <-> YCbCr conversions of the decoder and the writer.
//!
//! Decoding follows the stream's signalled matrix and range (H.264 VUI), and, when it says
//! nothing, BT.601 limited range, as FFmpeg's `swscale` does. Chroma is upsampled by
//! repetition (each chroma sample covers its 2x2 luma block), as FFmpeg's unscaled YUV->RGB
//! path does. The writer converts with BT.601 limited range and says so in the stream (VUI),
//! averaging each 2x2 block's RGB for chroma.

use image::{GrayImage, RgbImage};

/// The colour matrix of YCbCr samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    Bt601,
    Bt709,
    Bt2020,
}

/// How the decoded samples map to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorSpace {
    pub matrix: Matrix,
    /// `true`: 0-255 (JPEG/"yuvj"); `false`: 16-235 luma, 16-240 chroma.
    pub full_range: bool,
}

impl Default for ColorSpace {
    fn default() -> Self {
        Self {
            matrix: Matrix::Bt601,
            full_range: false,
        }
    }
}

/// A decoded 8-bit 4:2:0 picture, planes stored without padding
/// (chroma planes are `ceil(width/2) x ceil(height/2)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv420 {
    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// The luma plane as an image (the coded values, not rescaled to full range).
    pub fn luma(&self) -> GrayImage {
        GrayImage::from_raw(self.width, self.height, self.y.clone())
            .expect("luma plane has width*height bytes")
    }

    /// Converts to 8-bit RGB.
    pub fn to_rgb(&self, color: ColorSpace) -> RgbImage {
        let (w, h) = (self.width as usize, self.height as usize);
        let cw = w.div_ceil(2);
        let k = Coefficients::new(color);
        let mut out = vec![0u8; w * h * 3];
        let pairs = w / 2;
        for (row, rgb_row) in out.chunks_exact_mut(w * 3).enumerate() {
            let y_row = &self.y[row * w..(row + 1) * w];
            let c = (row / 2) * cw;
            let (u_row, v_row) = (&self.u[c..c + cw], &self.v[c..c + cw]);
            let (rgb_pairs, rgb_tail) = rgb_row.split_at_mut(pairs * 6);
            // Two luma samples share one chroma sample: its terms are computed once.
            for (((ys, &u), &v), px) in y_row
                .chunks_exact(2)
                .zip(u_row)
                .zip(v_row)
                .zip(rgb_pairs.chunks_exact_mut(6))
            {
                let (r, g, b) = k.chroma(u, v);
                let (l0, l1) = (k.luma(ys[0]), k.luma(ys[1]));
                px[0] = clamp_shift(l0 + r);
                px[1] = clamp_shift(l0 + g);
                px[2] = clamp_shift(l0 + b);
                px[3] = clamp_shift(l1 + r);
                px[4] = clamp_shift(l1 + g);
                px[5] = clamp_shift(l1 + b);
            }
            if w % 2 == 1 {
                let (r, g, b) = k.chroma(u_row[pairs], v_row[pairs]);
                let l = k.luma(y_row[w - 1]);
                rgb_tail[0] = clamp_shift(l + r);
                rgb_tail[1] = clamp_shift(l + g);
                rgb_tail[2] = clamp_shift(l + b);
            }
        }
        RgbImage::from_raw(self.width, self.height, out).expect("rgb buffer has w*h*3 bytes")
    }

    /// BT.601 limited-range YCbCr from RGB (what the writer encodes).
    pub fn from_rgb(img: &RgbImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        let mut y = vec![0u8; w * h];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            y[i] = luma_601(px[0], px[1], px[2]);
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut u = vec![0u8; cw * ch];
        let mut v = vec![0u8; cw * ch];
        for cy in 0..ch {
            for cx in 0..cw {
                // Average the 2x2 block (edge blocks of odd sizes repeat their last pixel).
                let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let sy = (2 * cy + dy).min(h - 1);
                    let sx = (2 * cx + dx).min(w - 1);
                    let p = &raw[(sy * w + sx) * 3..(sy * w + sx) * 3 + 3];
                    r += p[0] as i32;
                    g += p[1] as i32;
                    b += p[2] as i32;
                }
                // Cb = 128 + (-37.797 R - 74.203 G + 112 B) / 255, Cr likewise; inputs are
                // 4x the mean, so the fixed-point scale absorbs the /4.
                let cb = (-9714 * r - 19071 * g + 28784 * b + (128 << 18) + (1 << 17)) >> 18;
                let cr = (28784 * r - 24103 * g - 4681 * b + (128 << 18) + (1 << 17)) >> 18;
                u[cy * cw + cx] = cb.clamp(0, 255) as u8;
                v[cy * cw + cx] = cr.clamp(0, 255) as u8;
            }
        }
        Self {
            width: w as u32,
            height: h as u32,
            y,
            u,
            v,
        }
    }

    /// Grey frames: luma scaled into 16-235, neutral chroma.
    pub fn from_gray(img: &GrayImage) -> Self {
        let (w, h) = (img.width(), img.height());
        let y = img
            .as_raw()
            .iter()
            .map(|&g| ((g as u32 * 219 + 127) / 255 + 16) as u8)
            .collect();
        let n = (w.div_ceil(2) * h.div_ceil(2)) as usize;
        Self {
            width: w,
            height: h,
            y,
            u: vec![128; n],
            v: vec![128; n],
        }
    }

    /// Pads to `(width, height)` by repeating the last column and row (chroma likewise).
    pub fn pad_to(&self, width: u32, height: u32) -> Self {
        fn pad(plane: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
            let mut out = Vec::with_capacity(nw * nh);
            for y in 0..nh {
                let row = &plane[y.min(h - 1) * w..y.min(h - 1) * w + w];
                out.extend_from_slice(row);
                out.extend(std::iter::repeat_n(row[w - 1], nw - w));
            }
            out
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (nw, nh) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ncw, nch) = (nw.div_ceil(2), nh.div_ceil(2));
        Self {
            width,
            height,
            y: pad(&self.y, w, h, nw, nh),
            u: pad(&self.u, cw, ch, ncw, nch),
            v: pad(&self.v, cw, ch, ncw, nch),
        }
    }
}

/// Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, in 16.16 fixed point.
fn luma_601(r: u8, g: u8, b: u8) -> u8 {
    let y = (16829 * r as i32 + 33039 * g as i32 + 6416 * b as i32 + (16 << 16) + (1 << 15)) >> 16;
    y.clamp(0, 255) as u8
}

/// YCbCr -> RGB in 16.16 fixed point, as per-sample-value tables (no multiplies per pixel).
struct Coefficients {
    luma: [i32; 256],
    r_v: [i32; 256],
    g_uv: [[i32; 256]; 2],
    b_u: [i32; 256],
}

impl Coefficients {
    fn new(color: ColorSpace) -> Self {
        let (kr, kb) = match color.matrix {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        };
        let kg = 1.0 - kr - kb;
        let (ys, cs, yo) = if color.full_range {
            (1.0, 1.0, 0)
        } else {
            (255.0 / 219.0, 255.0 / 224.0, 16)
        };
        let fixed = |v: f64| (v * 65536.0).round() as i32;
        let (y_scale, r_v, g_u, g_v, b_u) = (
            fixed(ys),
            fixed(2.0 * (1.0 - kr) * cs),
            fixed(-2.0 * (1.0 - kb) * kb / kg * cs),
            fixed(-2.0 * (1.0 - kr) * kr / kg * cs),
            fixed(2.0 * (1.0 - kb) * cs),
        );
        let table = |f: &dyn Fn(i32) -> i32| std::array::from_fn(|i| f(i as i32));
        Self {
            luma: table(&|y| (y - yo) * y_scale + (1 << 15)),
            r_v: table(&|v| r_v * (v - 128)),
            g_uv: [table(&|u| g_u * (u - 128)), table(&|v| g_v * (v - 128))],
            b_u: table(&|u| b_u * (u - 128)),
        }
    }

    #[inline(always)]
    fn luma(&self, y: u8) -> i32 {
        self.luma[y as usize]
    }

    /// The red, green and blue chroma terms.
    #[inline(always)]
    fn chroma(&self, u: u8, v: u8) -> (i32, i32, i32) {
        (
            self.r_v[v as usize],
            self.g_uv[0][u as usize] + self.g_uv[1][v as usize],
            self.b_u[u as usize],
        )
    }
}

#[inline(always)]
fn clamp_shift(v: i32) -> u8 {
    (v >> 16).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_primaries_survive_a_round_trip() {
        let mut img = RgbImage::new(4, 2);
        let colors = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [200, 200, 200]];
        for (x, c) in colors.iter().enumerate() {
            img.put_pixel(x as u32, 0, image::Rgb(*c));
            img.put_pixel(x as u32, 1, image::Rgb(*c));
        }
        // Chroma of a 2x2 grey block is exactly neutral, so greys come back within rounding.
        let back = Yuv420::from_rgb(&img).to_rgb(ColorSpace::default());
        for (a, b) in img.pixels().zip(back.pixels()) {
            for c in 0..3 {
                assert!((a[c] as i32 - b[c] as i32).abs() <= 1, "{a:?} -> {b:?}");
            }
        }
        let yuv = Yuv420::from_rgb(&img);
        assert_eq!((yuv.y[0], yuv.y[1]), (16, 235));
        assert_eq!((yuv.u[0], yuv.v[0]), (128, 128));
    }

    #[test]
    fn padding_repeats_the_last_row_and_column() {
        let g = GrayImage::from_fn(3, 3, |x, y| image::Luma([(10 * x + y) as u8]));
        let p = Yuv420::from_gray(&g).pad_to(4, 4);
        assert_eq!(p.y.len(), 16);
        assert_eq!(p.y[3], p.y[2]);
        assert_eq!(&p.y[12..16], &p.y[8..12]);
    }
}
