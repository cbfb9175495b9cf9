//! Splitting a dataset's videos into N shards for job arrays: shard K of N (0 ≤ K < N) takes
//! the videos whose rank, in byte order of their names, is K modulo N. The rule depends only
//! on the set of video names, so `fgstp eval`, `fgstp infer` and `fgstp metrics` agree on it,
//! and interleaving spreads long and short videos (often named alike) over the shards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (written `K/N`, 0-based: `0/3`, `1/3`, `2/3`). Read back (from a
/// state file) under the same rule as on the command line: 0 ≤ K < N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ShardFields")]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Deserialize)]
struct ShardFields {
    index: usize,
    count: usize,
}

impl TryFrom<ShardFields> for Shard {
    type Error = String;

    fn try_from(f: ShardFields) -> Result<Self, String> {
        format!("{}/{}", f.index, f.count).parse()
    }
}

impl Shard {
    /// The items whose video belongs to this shard, in their original order. `video` names an
    /// item's video; several items may share one (frames of a video).
    pub fn select<T>(&self, items: Vec<T>, video: impl Fn(&T) -> String) -> Vec<T> {
        let named: Vec<(String, T)> = items.into_iter().map(|i| (video(&i), i)).collect();
        let mut names: Vec<&String> = named.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        let keep: Vec<bool> = named
            .iter()
            .map(|(name, _)| {
                let rank = names
                    .binary_search(&name)
                    .expect("every item's video is listed");
                rank % self.count == self.index
            })
            .collect();
        named
            .into_iter()
            .zip(keep)
            .filter_map(|((_, item), keep)| keep.then_some(item))
            .collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is no shard: write K/N with 0 <= K < N, e.g. 0/3 (Slurm: $SLURM_ARRAY_TASK_ID/N with --array=0-(N-1))"
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_interleave_videos_by_name_and_cover_each_once() {
        let frames: Vec<(&str, u32)> = vec![("c", 0), ("a", 0), ("b", 0), ("a", 1), ("d", 0)];
        let mut seen = Vec::new();
        for k in 0..3 {
            let shard: Shard = format!("{k}/3").parse().unwrap();
            let picked = shard.select(frames.clone(), |f| f.0.to_string());
            seen.extend(picked.iter().copied());
            let videos: Vec<&str> = picked.iter().map(|f| f.0).collect();
            match k {
                0 => assert_eq!(videos, ["a", "a", "d"]), // ranks 0 and 3
                1 => assert_eq!(videos, ["b"]),
                _ => assert_eq!(videos, ["c"]),
            }
        }
        seen.sort();
        let mut all = frames.clone();
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn shard_syntax_is_checked() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["3/3", "1/0", "1", "a/b", "-1/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("K/N"), "{err}");
        }
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
        // A state file's shard follows the same rule.
        let read: Shard = serde_json::from_str(r#"{"index":2,"count":5}"#).unwrap();
        assert_eq!(read, Shard { index: 2, count: 5 });
        for bad in [r#"{"index":7,"count":0}"#, r#"{"index":3,"count":3}"#] {
            let err = serde_json::from_str::<Shard>(bad).unwrap_err().to_string();
            assert!(err.contains("K/N"), "{err}");
        }
    }
}
