//! Muting a camera's alerts for a while (the MQTT command `<prefix>/<camera>/suspend`, in
//! minutes): its events are still written, marked with `suspended_until`, and not published as
//! alerts. Kept in `DIR/suspended.json`, so a restart of `fgstp watch` keeps them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// The longest suspension (a week): a mistyped number must not mute a camera for good.
pub const MAX_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// Each camera's end of suspension, shared by the engine and the MQTT publisher.
#[derive(Clone, Debug, Default)]
pub struct Suspensions {
    until: Arc<Mutex<BTreeMap<String, DateTime<Utc>>>>,
    file: Option<PathBuf>,
    /// Counts the changes (the MQTT publisher republishes `suspended` after one made by the
    /// dashboard).
    changes: Arc<AtomicU64>,
}

impl Suspensions {
    /// The suspensions in `out/suspended.json` (none when it is missing or unreadable).
    pub fn load(out: &Path) -> Self {
        let file = out.join("suspended.json");
        let until = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<BTreeMap<String, String>>(&t).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(camera, end)| {
                let end = DateTime::parse_from_rfc3339(&end).ok()?;
                Some((camera, end.with_timezone(&Utc)))
            })
            .collect();
        Self {
            until: Arc::new(Mutex::new(until)),
            file: Some(file),
            changes: Arc::default(),
        }
    }

    /// Whether `minutes` is a suspension's length (0 resumes).
    pub fn check_minutes(minutes: f64) -> Result<()> {
        ensure!(
            (0.0..=MAX_MINUTES).contains(&minutes),
            "suspend: minutes from 0 (resume) to {MAX_MINUTES}, not {minutes}"
        );
        Ok(())
    }

    /// Mutes `camera` for `minutes` from now (0: resumes it); the end of the suspension.
    pub fn suspend(&self, camera: &str, minutes: f64) -> Result<Option<DateTime<Utc>>> {
        Self::check_minutes(minutes)?;
        let mut map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let end = (minutes > 0.0)
            .then(|| Utc::now() + Duration::milliseconds((minutes * 60_000.0) as i64));
        // Saved first, applied after: a suspension that cannot be kept (a full disk) is an
        // error and changes nothing, rather than muting the camera while saying it failed.
        let mut next = map.clone();
        match end {
            Some(end) => next.insert(camera.to_string(), end),
            None => next.remove(camera),
        };
        if let Some(file) = &self.file {
            let tmp = file.with_extension("json.tmp");
            let text: BTreeMap<&String, String> = next
                .iter()
                .map(|(camera, end)| (camera, end.to_rfc3339_opts(SecondsFormat::Millis, true)))
                .collect();
            std::fs::write(&tmp, serde_json::to_vec_pretty(&text)?)
                .and_then(|()| std::fs::rename(&tmp, file))
                .with_context(|| format!("cannot save {}", file.display()))?;
        }
        *map = next;
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(end)
    }

    /// How many changes were made so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// When `camera`'s suspension ends, while it lasts.
    pub fn until(&self, camera: &str) -> Option<DateTime<Utc>> {
        let map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        map.get(camera).copied().filter(|end| *end > Utc::now())
    }

    /// `until` as written in event records and published: RFC 3339, milliseconds, UTC.
    pub fn until_text(&self, camera: &str) -> Option<String> {
        self.until(camera)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspension_lasts_its_minutes_survives_a_restart_and_ends_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let s = Suspensions::load(dir.path());
        assert!(s.until("pump").is_none());
        let end = s.suspend("pump", 30.0).unwrap().unwrap();
        let left = (end - Utc::now()).num_seconds();
        assert!((1790..=1800).contains(&left), "{left}");
        // Kept to the millisecond across a restart.
        let again = Suspensions::load(dir.path()).until("pump").unwrap();
        assert_eq!(again.timestamp_millis(), end.timestamp_millis());
        assert!(s.until("flange").is_none());
        assert_eq!(s.suspend("pump", 0.0).unwrap(), None);
        assert!(Suspensions::load(dir.path()).until("pump").is_none());
        assert!(s.suspend("pump", -1.0).is_err());
        // Not saved, not applied.
        std::fs::create_dir(dir.path().join("suspended.json.tmp")).unwrap();
        let err = s.suspend("pump", 30.0).unwrap_err();
        assert!(format!("{err:#}").contains("cannot save"), "{err:#}");
        assert!(s.until("pump").is_none());
        std::fs::remove_dir(dir.path().join("suspended.json.tmp")).unwrap();
        assert!(s.suspend("pump", f64::NAN).is_err());
        assert!(s.suspend("pump", MAX_MINUTES + 1.0).is_err());
    }
}
