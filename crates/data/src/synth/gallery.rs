//! One frame of each element the generator draws, beside its mask (`fgstp synth --gallery`),
//! for the documentation.

use image::GrayImage;

use super::plume::WARMUP;
use super::scene::{build_scene, render, Crosser, LeakPlan, Plan};
use super::{to_grey8, SynthConfig};

/// A picture of one element: the frame and its mask side by side.
pub struct GalleryItem {
    /// File stem, e.g. `steam`.
    pub name: &'static str,
    pub caption: &'static str,
    /// Frame | mask, each `scale`× the generated size.
    pub image: GrayImage,
}

const FRAMES: usize = 8;
const SHOWN: usize = 5;

fn plain() -> Plan {
    Plan {
        leak: Some(LeakPlan {
            hidden_source: false,
            windows: vec![(-(WARMUP as i64) - 1, i64::MAX)],
        }),
        idle_pipes: 0,
        shimmer: false,
        steam: false,
        crosser: None,
        nuc_frame: None,
        shake_from: None,
    }
}

/// The elements, each in a scene of its own drawn from `seed`, shown at frame 5 of 8 (the
/// shutter frame for the flat-field correction), `scale`× enlarged.
pub fn gallery(seed: u64, width: u32, height: u32, scale: u32) -> Vec<GalleryItem> {
    let leak_free = Plan {
        leak: None,
        ..plain()
    };
    let items: Vec<(&'static str, &'static str, Plan)> = vec![
        ("leak", "A leak at the end of a pipe: the mask is the gas above its threshold", plain()),
        (
            "idle-pipes",
            "Pipe ends that do not leak beside the one that does",
            Plan { idle_pipes: 2, ..plain() },
        ),
        (
            "hidden-source",
            "A leak from a point without visible equipment",
            Plan {
                leak: Some(LeakPlan { hidden_source: true, ..plain().leak.unwrap() }),
                ..plain()
            },
        ),
        ("leak-free", "A leak-free scene with a pipe end: an empty mask", Plan { idle_pipes: 1, ..leak_free.clone() }),
        (
            "onset",
            "A leak two frames after it started: the gas is building up",
            Plan {
                leak: Some(LeakPlan { hidden_source: false, windows: vec![(SHOWN as i64 - 1, i64::MAX)] }),
                ..plain()
            },
        ),
        (
            "stop",
            "Two frames after a leak stopped: the gas dissipates",
            Plan {
                leak: Some(LeakPlan { hidden_source: false, windows: vec![(-(WARMUP as i64) - 1, SHOWN as i64 - 1)] }),
                ..plain()
            },
        ),
        ("shimmer", "Heat shimmer above a hot surface: not gas", Plan { shimmer: true, ..leak_free.clone() }),
        ("steam", "Steam from a stack: brighter, slower and more opaque than gas; not gas", Plan { steam: true, ..leak_free.clone() }),
        ("person", "A person crossing: not gas", Plan { crosser: Some(Crosser::Person), ..leak_free.clone() }),
        ("vehicle", "A vehicle crossing, its engine hot: not gas", Plan { crosser: Some(Crosser::Vehicle), ..leak_free.clone() }),
        (
            "nuc",
            "A flat-field correction's shutter frame (the gas is there, the camera does not see it): an empty mask",
            Plan { nuc_frame: Some(SHOWN), ..plain() },
        ),
        ("shake", "Camera shake: everything moves by a few pixels, the mask with it", Plan { shake_from: Some(SHOWN - 1), ..plain() }),
    ];
    let cfg = SynthConfig {
        frames: FRAMES,
        width,
        height,
        seed,
        ..SynthConfig::default()
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, (name, caption, plan))| {
            let scene = build_scene(&cfg, index, &plan);
            let (pixels, mask) = render(&cfg, &scene, index, SHOWN);
            let frame = to_grey8(&pixels);
            let gap = 4 * scale;
            let (w, h) = (width * scale, height * scale);
            let image = GrayImage::from_fn(2 * w + gap, h, |x, y| {
                let at = |buf: &[u8], x: u32| buf[((y / scale) * width + x / scale) as usize];
                if x < w {
                    image::Luma([at(&frame, x)])
                } else if x < w + gap {
                    image::Luma([255])
                } else {
                    image::Luma([at(&mask, x - w - gap)])
                }
            });
            GalleryItem {
                name,
                caption,
                image,
            }
        })
        .collect()
}
