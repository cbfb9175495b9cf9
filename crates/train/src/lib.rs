//! The training loop as a library (`fgstp-train`), usable and tested without the command line:
//!
//! - [`overrides`]: TOML files with `--set key.path=value` overrides (any serde type);
//! - [`run_config`]: the run configuration's schema (`[model] [data] [train] [eval] [log]`);
//! - [`trainer`]: the [`trainer::Trainer`] — set-up and resume, epochs, validation, logging,
//!   checkpoints — with the reference's loss and optimiser;
//! - [`evaluate`]: a model over a dataset split, frame by frame, scored or written out
//!   ([`outputs`]); [`trained_run`]: a run's configuration and weights loaded for that;
//!   [`infer`]: `fgstp infer` on new footage (video files included), with output videos;
//! - [`recipes`]: one recipe per model kind (its data, loss, pretrained keys, evaluation
//!   protocol) and the registry of kinds;
//! - [`distributed`]: data-parallel training over several processes (c10d: torchrun, srun,
//!   `--nproc`);
//! - [`loss`]: the losses the recipes compose;
//! - [`bench`]: the measurements of `fgstp bench`;
//! - [`watch`]: live cameras → leak events (`fgstp watch`);
//! - [`progress`]: the one progress-bar style of every long task.
//!
//! The `fgstp` binary (crate `fgstp-cli`) only parses arguments, calls these and prints.

pub mod bench;
pub mod distributed;
pub mod evaluate;
pub mod infer;
pub mod loss;
pub mod outputs;
pub mod overrides;
pub mod progress;
pub mod recipes;
pub mod run_config;
pub mod trained_run;
pub mod trainer;
pub mod watch;
