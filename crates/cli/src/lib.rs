//! The library behind the `fgstp` binary, usable (and tested) without the command line:
//!
//! - [`toml_overrides`]: TOML files with `--set key.path=value` overrides (any serde type);
//! - [`run_config`]: the run configuration's schema (`[model] [data] [train] [eval] [log]`);
//! - [`train`]: the [`train::Trainer`] — set-up and resume, epochs, validation, logging,
//!   checkpoints — with the reference's loss and optimiser;
//! - [`evaluate`]: a model over a dataset split, frame by frame, scored or written out
//!   ([`outputs`]); [`trained`]: a run's configuration and weights loaded for that;
//!   ([`zoomnext_eval`]: ZoomNeXt's batch-normalised reference evaluation);
//!   [`model_inputs`]: what each model kind reads from the data;
//!   [`footage`]: `fgstp infer` on new footage (video files included), with output videos;
//! - [`bench`]: the measurements of `fgstp bench`;
//! - [`progress`]: the one progress-bar style of every long command.
//!
//! The binary's subcommands (`src/commands/`) only parse arguments, call these and print.

pub mod bench;
pub mod evaluate;
pub mod footage;
pub mod model_inputs;
pub mod outputs;
pub mod progress;
pub mod run_config;
pub mod toml_overrides;
pub mod train;
pub mod trained;
pub mod zoomnext_eval;
