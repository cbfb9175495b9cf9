//! The picture grid: one row per chosen frame, columns frame | ground truth | each system's
//! map as it was scored.

use std::path::Path;

use anyhow::{anyhow, Result};
use image::{imageops, DynamicImage, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{save_rgb, FAMILY};
use crate::io::compare::Comparison;
use crate::io::Map;

const TILE_HEIGHT: u32 = 160;
const PAD: u32 = 6;
const HEADER: u32 = 30;
const ROW_LABEL: u32 = 20;

fn grey_to_rgb(map: &Map) -> RgbImage {
    let mut img = RgbImage::new(map.width as u32, map.height as u32);
    for (p, &v) in img.pixels_mut().zip(&map.pixels) {
        *p = image::Rgb([v, v, v]);
    }
    img
}

/// A frame for display: 8-bit as is, 16-bit grey stretched over its own range.
fn load_frame(path: &Path) -> Option<RgbImage> {
    let img = image::open(path).ok()?;
    Some(match img {
        DynamicImage::ImageLuma16(g) => {
            let (lo, hi) = g
                .pixels()
                .fold((u16::MAX, 0), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
            let range = (hi.saturating_sub(lo)).max(1) as f32;
            let mut out = RgbImage::new(g.width(), g.height());
            for (o, p) in out.pixels_mut().zip(g.pixels()) {
                let v = ((p[0] - lo) as f32 / range * 255.0).round() as u8;
                *o = image::Rgb([v, v, v]);
            }
            out
        }
        other => other.to_rgb8(),
    })
}

pub(crate) fn draw(c: &Comparison, path: &Path) -> Result<()> {
    let first = &c.grid[0].gt;
    // Tiles keep the masks' aspect, within 1:4 to 4:1 of the tile height (a strip of a
    // mask must not make the picture gigapixels wide).
    let tile_w = ((first.width as f64 / first.height.max(1) as f64) * TILE_HEIGHT as f64)
        .round()
        .clamp(40.0, 4.0 * TILE_HEIGHT as f64) as u32;
    let with_frames = c.grid.iter().any(|g| g.image.is_some());
    let mut titles: Vec<String> = Vec::new();
    if with_frames {
        titles.push("frame".into());
    }
    titles.push("ground truth".into());
    titles.extend(c.systems.iter().map(|s| s.name.clone()));
    let cols = titles.len() as u32;
    let w = PAD + cols * (tile_w + PAD);
    let row_h = ROW_LABEL + TILE_HEIGHT + PAD;
    let h = HEADER + c.grid.len() as u32 * row_h + PAD;
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let fit =
        |img: &RgbImage| imageops::resize(img, tile_w, TILE_HEIGHT, imageops::FilterType::Triangle);
    for (r, frame) in c.grid.iter().enumerate() {
        let mut tiles: Vec<RgbImage> = Vec::new();
        if with_frames {
            tiles.push(match frame.image.as_deref().and_then(load_frame) {
                Some(img) => fit(&img),
                None => RgbImage::from_pixel(tile_w, TILE_HEIGHT, image::Rgb([200, 200, 200])),
            });
        }
        tiles.push(fit(&grey_to_rgb(&frame.gt)));
        tiles.extend(frame.preds.iter().map(|m| fit(&grey_to_rgb(m))));
        let y = HEADER + r as u32 * row_h + ROW_LABEL;
        for (col, tile) in tiles.iter().enumerate() {
            let x = PAD + col as u32 * (tile_w + PAD);
            imageops::replace(&mut canvas, tile, x as i64, y as i64);
        }
    }
    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let centred = TextStyle::from((FAMILY, 16).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center));
        for (col, title) in titles.iter().enumerate() {
            let x = PAD + col as u32 * (tile_w + PAD) + tile_w / 2;
            root.draw(&Text::new(
                title.clone(),
                (x as i32, (HEADER / 2) as i32),
                centred.clone(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        let left = TextStyle::from((FAMILY, 13).into_font())
            .color(&RGBColor(60, 60, 60))
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (r, frame) in c.grid.iter().enumerate() {
            let y = HEADER + r as u32 * row_h + ROW_LABEL / 2;
            root.draw(&Text::new(
                format!("{} / {}", frame.video, frame.stem),
                (PAD as i32, y as i32),
                left.clone(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    save_rgb(path, w, h, buf)
}
