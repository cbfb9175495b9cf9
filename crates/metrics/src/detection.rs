//! Frame-level leak detection: does a frame's prediction mark a leak at all, and should it?
//!
//! A frame is *predicted leak* when its predicted area — pixels whose absolute probability is
//! `> 0.5`, or for an 8-bit map pixels `>= 128` of the map as it is — is at least
//! [`MinLeakArea`] pixels. A frame *has a leak* when its mask has a non-zero pixel (the frames
//! the `test.py` Jaccard and F1 average over). Unlike the `test.py` protocol, the prediction is
//! not min-max normalised: normalised, every non-constant map of a leak-free frame would mark
//! pixels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::GrayView;

/// Decimals a percentage may have.
const MAX_DECIMALS: u32 = 6;

/// The smallest predicted area that counts as a detected leak: a number of pixels, or a
/// percentage of the frame's pixels (rounded up, at least one pixel). Written `"40"` or
/// `"40px"` (pixels) and `"0.5%"` (percent); in TOML also an integer (pixels). Default `0.5%`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MinLeakArea {
    /// At least this many pixels (at least 1).
    Pixels(u64),
    /// At least `digits / 10^decimals` percent of the frame: a decimal kept exactly
    /// (no trailing zeros in `digits` unless `decimals` is 0), so that `0.5%` and `0.50%` are
    /// one rule and the pixel count is computed without rounding errors.
    Percent { digits: u64, decimals: u32 },
}

impl Default for MinLeakArea {
    fn default() -> Self {
        MinLeakArea::Percent {
            digits: 5,
            decimals: 1,
        }
    }
}

impl MinLeakArea {
    /// The rule as a number of pixels for a frame of `pixels` pixels: `Pixels(n)` is `n`;
    /// `Percent(p)` is `ceil(p / 100 × pixels)`, at least 1.
    pub fn min_pixels(self, pixels: u64) -> u64 {
        match self {
            MinLeakArea::Pixels(n) => n,
            MinLeakArea::Percent { digits, decimals } => {
                let denominator = 100 * 10u128.pow(decimals);
                let numerator = digits as u128 * pixels as u128;
                (numerator.div_ceil(denominator).max(1)).min(u64::MAX as u128) as u64
            }
        }
    }
}

/// Why a text is no [`MinLeakArea`]; the message names the text and the accepted forms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid minimum leak area {text:?}: {problem}; expected pixels (\"40\" or \"40px\", at \
     least 1) or a percentage of the frame (\"0.5%\", more than 0 and at most 100, up to \
     {MAX_DECIMALS} decimals)"
)]
pub struct MinLeakAreaError {
    pub text: String,
    pub problem: &'static str,
}

impl FromStr for MinLeakArea {
    type Err = MinLeakAreaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem| MinLeakAreaError {
            text: text.to_string(),
            problem,
        };
        let trimmed = text.trim();
        if let Some(number) = trimmed.strip_suffix('%') {
            let number = number.trim_end();
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty() && fraction.is_empty() || !is_digits(whole) || !is_digits(fraction)
            {
                return Err(error("not a decimal number before '%'"));
            }
            let fraction = fraction.trim_end_matches('0');
            if fraction.len() > MAX_DECIMALS as usize {
                return Err(error("too many decimals"));
            }
            let digits: u64 = format!("{whole}{fraction}")
                .parse::<u64>()
                .unwrap_or(u64::MAX); // only a value far above 100 overflows
            let decimals = fraction.len() as u32;
            if digits == 0 {
                return Err(error("the percentage must be more than 0"));
            }
            if digits as u128 > 100 * 10u128.pow(decimals) {
                return Err(error("the percentage must be at most 100"));
            }
            return Ok(MinLeakArea::Percent { digits, decimals });
        }
        let number = trimmed.strip_suffix("px").unwrap_or(trimmed).trim_end();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error("not a whole number of pixels or a percentage"));
        }
        match number.parse::<u64>() {
            Ok(0) => Err(error("the pixel count must be at least 1")),
            Ok(n) => Ok(MinLeakArea::Pixels(n)),
            Err(_) => Err(error("the pixel count is too large")),
        }
    }
}

impl fmt::Display for MinLeakArea {
    /// `40px` or `0.5%`: the form [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MinLeakArea::Pixels(n) => write!(f, "{n}px"),
            MinLeakArea::Percent { digits, decimals } => {
                let scale = 10u64.pow(decimals);
                let (whole, fraction) = (digits / scale, digits % scale);
                if decimals == 0 {
                    write!(f, "{whole}%")
                } else {
                    let width = decimals as usize;
                    write!(f, "{whole}.{fraction:0width$}%")
                }
            }
        }
    }
}

impl Serialize for MinLeakArea {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MinLeakArea {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Pixels(i64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected a minimum leak area: pixels (40 or \"40px\") or a percentage of the \
                 frame (\"0.5%\")",
            )
        })? {
            Raw::Pixels(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The areas one frame's detection is decided from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    /// Pixels predicted as leak: absolute probability `> 0.5`, or an 8-bit map's `>= 128`.
    pub predicted_area: u64,
    /// Pixels of the mask's foreground by `test.py`'s rule (`gt / max > 0.5`); 0 exactly when
    /// every mask pixel is 0.
    pub mask_area: u64,
    /// The frame's pixel count.
    pub pixels: u64,
}

impl Detection {
    /// The predicted area of an 8-bit map or mask as it is: its pixels `>= 128` (what
    /// [`crate::FrameScores::compute`] counts of its prediction).
    pub fn map_area(map: GrayView<'_>) -> u64 {
        map.pixels().iter().filter(|&&v| v >= 128).count() as u64
    }

    /// Whether the mask marks a leak.
    pub fn has_leak(&self) -> bool {
        self.mask_area > 0
    }

    /// Whether the prediction marks a leak under `rule`.
    pub fn predicts_leak(&self, rule: MinLeakArea) -> bool {
        self.predicted_area >= rule.min_pixels(self.pixels)
    }

    /// On a frame with a leak: whether it was found (`leak_recall`'s frames).
    pub(crate) fn found(&self, rule: MinLeakArea) -> Option<bool> {
        self.has_leak().then(|| self.predicts_leak(rule))
    }

    /// On a leak-free frame: whether a leak was predicted (`leak_fpr`'s frames).
    pub(crate) fn false_alarm(&self, rule: MinLeakArea) -> Option<bool> {
        (!self.has_leak()).then(|| self.predicts_leak(rule))
    }
}

/// Pixels of a probability map above 0.5 (NaN is not).
pub(crate) fn probability_area(probability: &[f32]) -> u64 {
    probability.iter().filter(|&&p| p > 0.5).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MinLeakArea {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rules_parse_print_and_round_up_to_pixels() {
        assert_eq!(parse("40"), MinLeakArea::Pixels(40));
        assert_eq!(parse("40px"), MinLeakArea::Pixels(40));
        assert_eq!(parse("0.5%"), MinLeakArea::default());
        assert_eq!(parse("0.50%"), parse(".5%"));
        assert_eq!(parse("100%").to_string(), "100%");
        for text in ["40px", "0.5%", "12.25%", "3%", "0.000001%"] {
            assert_eq!(parse(text).to_string(), text);
            assert_eq!(parse(&parse(text).to_string()), parse(text));
        }
        // 0.5 % of 200 pixels is exactly 1; of 201, 1.005 -> 2; never below 1.
        assert_eq!(parse("0.5%").min_pixels(200), 1);
        assert_eq!(parse("0.5%").min_pixels(201), 2);
        assert_eq!(parse("0.5%").min_pixels(10), 1);
        assert_eq!(parse("0.5%").min_pixels(480 * 640), 1536);
        assert_eq!(parse("100%").min_pixels(12), 12);
        assert_eq!(parse("40px").min_pixels(12), 40);
    }

    #[test]
    fn bad_rules_name_the_value_and_the_accepted_forms() {
        for bad in [
            "",
            "0",
            "0px",
            "-3",
            "1.5",
            "abc",
            "%",
            "0%",
            "101%",
            "1e3%",
            "0.0000001%",
            "5 %x",
            "1.2.3%",
        ] {
            let err = bad.parse::<MinLeakArea>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("\"40px\"") && err.contains("\"0.5%\""),
                "{err}"
            );
        }
    }

    #[test]
    fn serde_reads_strings_and_integers_and_writes_strings() {
        #[derive(Deserialize, Serialize)]
        struct T {
            rule: MinLeakArea,
        }
        let t: T = serde_json::from_str(r#"{"rule": 40}"#).unwrap();
        assert_eq!(t.rule, MinLeakArea::Pixels(40));
        let t: T = serde_json::from_str(r#"{"rule": "2.5%"}"#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"rule":"2.5%"}"#);
        let err = serde_json::from_str::<T>(r#"{"rule": 0}"#).err().unwrap();
        assert!(err.to_string().contains("at least 1"), "{err}");
        assert!(serde_json::from_str::<T>(r#"{"rule": 0.5}"#).is_err());
    }

    #[test]
    fn frames_are_found_missed_quiet_or_false_alarms_at_the_area_boundary() {
        let rule = MinLeakArea::Pixels(3);
        let frame = |predicted_area, mask_area| Detection {
            predicted_area,
            mask_area,
            pixels: 100,
        };
        assert_eq!(frame(3, 5).found(rule), Some(true));
        assert_eq!(frame(2, 5).found(rule), Some(false));
        assert_eq!(frame(3, 0).found(rule), None);
        assert_eq!(frame(2, 0).false_alarm(rule), Some(false));
        assert_eq!(frame(3, 0).false_alarm(rule), Some(true));
        assert_eq!(frame(3, 5).false_alarm(rule), None);
        // 2.5 % of 100 pixels: 3 (rounded up)
        let percent = parse("2.5%");
        assert!(frame(3, 0).predicts_leak(percent) && !frame(2, 0).predicts_leak(percent));
        assert_eq!(
            probability_area(&[0.5, 0.50001, 1.0, f32::NAN, 0.0, 0.9]),
            3
        );
    }
}
