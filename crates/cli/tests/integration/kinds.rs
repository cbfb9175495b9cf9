//! `fgstp kinds`: the registry as scripts and people read it.

use crate::common::{fgstp, ok};

#[test]
fn kinds_lists_every_registered_kind_for_scripts_and_as_json() {
    let names = ok(fgstp(&["kinds", "--names"]));
    let names: Vec<String> = String::from_utf8(names.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        [
            "fgstp",
            "sinet-v2",
            "slt-net",
            "slt-net-long",
            "zoomnext",
            "zoomnext-video"
        ]
    );
    let json = ok(fgstp(&["kinds", "--json"]));
    let kinds: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let kinds = kinds.as_array().unwrap();
    assert_eq!(kinds.len(), names.len());
    for (kind, name) in kinds.iter().zip(&names) {
        assert_eq!(kind["kind"], name.as_str());
        // Every kind names a shipped configuration that exists.
        let config = kind["config"].as_str().unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(config);
        assert!(path.is_file(), "{name}: {config} is missing");
    }
    assert_eq!(kinds[0]["frames_per_sample"], 3);
    assert_eq!(kinds[0]["feature_cache"], true);
    assert_eq!(kinds[5]["frames_per_sample"], 5);
    // Plain text names each kind; --names and --json together are refused.
    let text = String::from_utf8(ok(fgstp(&["kinds"])).stdout).unwrap();
    assert!(
        names.iter().all(|n| text.contains(&format!("{n}\n"))),
        "{text}"
    );
    assert!(!fgstp(&["kinds", "--names", "--json"]).status.success());
}
