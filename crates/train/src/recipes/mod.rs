//! One recipe per model kind: everything the training loop, evaluation, inference and the
//! benchmarks need to know about a kind beyond its network — the data it reads, its loss, how
//! pretrained encoder weights load into it, its evaluation protocol, whether video inference can
//! cache its per-frame features — and the facts `fgstp kinds` and the docs list. The network
//! itself is the model crate's (`fgstp_model::Model`, dispatched on `model.kind`).
//!
//! The registry, [`RECIPES`], is the one list of kinds: `fgstp kinds` prints it,
//! `scripts/experiments/reproduce-table` takes its kinds from there, and a test keeps the docs'
//! kind table equal to it. Adding a kind: its model file(s) in the model crate, a module here
//! with a [`Recipe`], one line in [`RECIPES`], its config under `configs/`, its tests
//! (docs: Developer guide, "Adding a model kind").
//!
//! What each kind reads from the data (its [`Recipe::input_spec`]):
//!
//! | kind | training sample | pixels | masks | augmentation | `protocol = "reference"` |
//! | --- | --- | --- | --- | --- | --- |
//! | fgstp, slt-net, sinet-v2 | triplet (t, t+1, t+2) | Pillow resize, ImageNet mean/std | Pillow resize | FGSTP's PIL set | frames 0 … n−3 |
//! | zoomnext | annotated frame | 3 zoom scales, OpenCV resize of the uint8 frame, / 255 | > 0, OpenCV float resize | albumentations (image) | annotated frames |
//! | zoomnext-video | clip of 5 (ZoomNeXt's starts) | as zoomnext | as zoomnext | albumentations (video) | annotated frames |
//! | slt-net-long | clip of `train.clip_frames` (every start) | Pillow resize to 256×448, / 255, + prior | Pillow resize | shared flip/rotation (off in its recipe) | frames 0 … n−3 |

mod fgstp;
mod recipe;
mod sinet_v2;
mod slt_net;
mod slt_net_long;
pub mod zoomnext;

use fgstp_model::ModelKind;

pub use recipe::{About, FrameSink, Loss, Recipe};

/// Every model kind, in the order `fgstp kinds` and the docs list them.
pub static RECIPES: [&dyn Recipe; 6] = [
    &fgstp::Fgstp,
    &sinet_v2::SinetV2,
    &slt_net::SltNet,
    &slt_net_long::SltNetLong,
    &zoomnext::ZoomNextImage,
    &zoomnext::ZoomNextVideo,
];

/// The recipe of `kind`.
pub fn recipe(kind: ModelKind) -> &'static dyn Recipe {
    *RECIPES
        .iter()
        .find(|r| r.kind() == kind)
        .expect("every ModelKind has a recipe in RECIPES")
}

/// The registry as a Markdown table (`fgstp kinds --markdown`, and the docs' kind table).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| kind | model | frames per sample | feature cache | reference |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in RECIPES {
        let about = r.about();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            about.name,
            about.model,
            r.frames(),
            if r.has_feature_cache() { "yes" } else { "no" },
            about.reference
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry holds each kind once, and each name is the kind's configuration spelling.
    #[test]
    fn every_kind_has_one_recipe_named_as_configs_spell_it() {
        let mut seen = Vec::new();
        for r in RECIPES {
            assert!(
                !seen.contains(&r.kind()),
                "{} is registered twice",
                r.about().name
            );
            seen.push(r.kind());
            let spelled: ModelKind = toml::Value::String(r.about().name.to_string())
                .try_into()
                .unwrap();
            assert_eq!(spelled, r.kind(), "{}", r.about().name);
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(r.about().config)
                    .is_file(),
                "{}: {} is missing",
                r.about().name,
                r.about().config
            );
        }
        assert_eq!(seen.len(), 6);
    }
}
