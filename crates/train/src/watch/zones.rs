//! Zones (named polygons over equipment) and ignore masks (steam vents, flare stacks, exhausts),
//! drawn in the camera frame's pixel coordinates and rasterised at the resolution the leak
//! decisions are made at.

pub use crate::run_config::watch::{check_polygon, Polygon, ZoneConfig};

/// A set of pixels of a `width × height` grid.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelMask {
    width: usize,
    height: usize,
    bits: Vec<bool>,
}

impl PixelMask {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            bits: vec![false; width * height],
        }
    }

    pub fn get(&self, i: usize) -> bool {
        self.bits[i]
    }

    pub fn set(&mut self, i: usize) {
        self.bits[i] = true;
    }

    pub fn count(&self) -> usize {
        self.bits.iter().filter(|b| **b).count()
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The pixels of a `width × height` grid whose centres lie inside one of `polygons`, the
    /// polygons drawn on a `frame_width × frame_height` frame (even-odd rule).
    pub fn from_polygons(
        polygons: &[&Polygon],
        frame_width: usize,
        frame_height: usize,
        width: usize,
        height: usize,
    ) -> Self {
        let mut mask = Self::new(width, height);
        let (sx, sy) = (
            frame_width as f64 / width as f64,
            frame_height as f64 / height as f64,
        );
        for polygon in polygons {
            for y in 0..height {
                for x in 0..width {
                    let p = [(x as f64 + 0.5) * sx, (y as f64 + 0.5) * sy];
                    if inside(polygon, p) {
                        mask.set(y * width + x);
                    }
                }
            }
        }
        mask
    }
}

/// Even-odd test of point `p` against `polygon`.
fn inside(polygon: &Polygon, p: [f64; 2]) -> bool {
    let mut inside = false;
    let n = polygon.len();
    for i in 0..n {
        let (a, b) = (polygon[i], polygon[(i + n - 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// A camera's zones and ignore mask rasterised at the decision resolution.
#[derive(Clone, Debug)]
pub struct CameraAreas {
    pub zones: Vec<(String, PixelMask)>,
    pub ignore: Option<PixelMask>,
}

impl CameraAreas {
    pub fn new(
        zones: &[ZoneConfig],
        ignore: &[Polygon],
        frame: (usize, usize),
        grid: (usize, usize),
    ) -> Self {
        Self {
            zones: zones
                .iter()
                .map(|z| {
                    let mask =
                        PixelMask::from_polygons(&[&z.polygon], frame.0, frame.1, grid.0, grid.1);
                    (z.name.clone(), mask)
                })
                .collect(),
            ignore: (!ignore.is_empty()).then(|| {
                let polygons: Vec<&Polygon> = ignore.iter().collect();
                PixelMask::from_polygons(&polygons, frame.0, frame.1, grid.0, grid.1)
            }),
        }
    }

    /// The names of the zones `pixels` touch, in the configured order.
    pub fn zones_of(&self, pixels: &[u32]) -> Vec<String> {
        self.zones
            .iter()
            .filter(|(_, mask)| pixels.iter().any(|&i| mask.get(i as usize)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygons_are_rasterised_at_the_decision_resolution() {
        // A square over the left half of a 100×50 frame, on a 10×5 grid.
        let square: Polygon = vec![[0.0, 0.0], [50.0, 0.0], [50.0, 50.0], [0.0, 50.0]];
        let mask = PixelMask::from_polygons(&[&square], 100, 50, 10, 5);
        assert_eq!(mask.count(), 25);
        assert!(mask.get(4) && !mask.get(5));
        // A triangle: the even-odd rule.
        let triangle: Polygon = vec![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mask = PixelMask::from_polygons(&[&triangle], 10, 10, 10, 10);
        assert!(mask.get(0) && mask.get(8) && !mask.get(9) && !mask.get(99));
        assert!(check_polygon(&vec![[0.0, 0.0], [1.0, 1.0]], "zone a").is_err());
    }

    #[test]
    fn a_region_lists_the_zones_it_touches() {
        let left: Polygon = vec![[0.0, 0.0], [5.0, 0.0], [5.0, 10.0], [0.0, 10.0]];
        let right: Polygon = vec![[5.0, 0.0], [10.0, 0.0], [10.0, 10.0], [5.0, 10.0]];
        let zones = vec![
            ZoneConfig {
                name: "valve".into(),
                polygon: left,
            },
            ZoneConfig {
                name: "flange".into(),
                polygon: right,
            },
        ];
        let areas = CameraAreas::new(&zones, &[], (10, 10), (10, 10));
        assert_eq!(areas.zones_of(&[0, 1]), vec!["valve"]);
        assert_eq!(areas.zones_of(&[4, 5]), vec!["valve", "flange"]);
        assert!(areas.ignore.is_none());
    }
}
