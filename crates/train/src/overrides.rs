//! Configuration files of any serde type: TOML, with `--set key.path=value` overrides, unknown
//! keys and wrong types reported with their full key path, and the resolved result written back
//! (e.g. next to a run). The run configuration's schema is [`crate::run_config`].

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads `path`, applies the overrides in order, and deserialises the result.
pub fn load<T: DeserializeOwned>(path: &Path, overrides: &[String]) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    for assignment in overrides {
        apply_override(&mut table, assignment)?;
    }
    from_table(table).with_context(|| format!("in config {}", path.display()))
}

/// Deserialises a table, naming the full key path of any problem (`train.lr: invalid type…`,
/// `model.backbon: unknown field…`).
pub fn from_table<T: DeserializeOwned>(table: toml::Table) -> Result<T> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("{path}: {inner}")
        }
    })
}

/// `a.b.c=value`: the value is read as a TOML literal (`3`, `1e-4`, `true`, `"x"`, `[2, 4]`),
/// falling back to a plain string (`device=cuda:0`), and set at that path.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        bail!("--set {assignment:?}: expected key=value, e.g. --set train.epochs=5");
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment:?}: {key:?} is not a key path like train.epochs");
    }
    let raw = raw.trim();
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));

    let (last, sections) = parts.split_last().expect("at least one part");
    let mut node = table;
    for (depth, part) in sections.iter().enumerate() {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => bail!(
                "--set {assignment:?}: {} is a value, not a section",
                parts[..=depth].join(".")
            ),
        };
    }
    node.insert(last.to_string(), value);
    Ok(())
}

/// Writes the configuration as TOML (atomically), e.g. the resolved config of a run.
pub fn write<T: serde::Serialize>(config: &T, path: &Path) -> Result<()> {
    let text = toml::to_string_pretty(config).context("cannot serialise the configuration")?;
    fgstp_metrics::io::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Train {
        epochs: usize,
        #[serde(default)]
        device: String,
        #[serde(default)]
        pools: Vec<i64>,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        train: Train,
    }

    fn parse(text: &str, sets: &[&str]) -> Result<Cfg> {
        let mut table: toml::Table = text.parse()?;
        for s in sets {
            apply_override(&mut table, s)?;
        }
        from_table(table)
    }

    #[test]
    fn overrides_take_toml_literals_and_fall_back_to_strings() {
        let cfg = parse(
            "[train]\nepochs = 60\n",
            &[
                "train.epochs=5",
                "train.device=cuda:1",
                "train.pools=[2, 2, 4]",
            ],
        )
        .unwrap();
        assert_eq!(
            cfg.train,
            Train {
                epochs: 5,
                device: "cuda:1".into(),
                pools: vec![2, 2, 4]
            }
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let err = parse("[train]\nepochs = 1\nepoch = 2\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.epoch") && err.contains("unknown field"),
            "{err}"
        );
        let err = parse("[train]\nepochs = 1\n", &["train.lr=1e-3"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.lr") && err.contains("unknown field"),
            "{err}"
        );
        let err = parse("[train]\nepochs = 1\n", &["trian.epochs=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("trian"), "{err}");
    }

    #[test]
    fn wrong_types_and_malformed_overrides_are_explained() {
        let err = parse("[train]\nepochs = 1\n", &["train.epochs=many"]).unwrap_err();
        assert!(err.to_string().contains("train.epochs"), "{err}");
        let err = parse("[train]\nepochs = 1\n", &["train.epochs"]).unwrap_err();
        assert!(err.to_string().contains("expected key=value"), "{err}");
        let err = parse("[train]\nepochs = 1\n", &["train.epochs.x=1"]).unwrap_err();
        assert!(
            err.to_string().contains("is a value, not a section"),
            "{err}"
        );
    }
}
