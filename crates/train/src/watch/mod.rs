//! `fgstp watch`: live cameras segmented as frames arrive, and the masks turned into leak
//! events.
//!
//! - [`regions`]: a probability map → gas regions (hysteresis thresholds, ignore masks,
//!   connected regions with a minimum area);
//! - [`zones`]: named zones and ignore masks, drawn in the camera frame's pixels;
//! - [`events`]: regions tracked across frames → confirmed leak events (new / update / end),
//!   with their rules;
//! - [`source`]: video files, folders of frames, raw frames on standard input, MJPEG over
//!   HTTP, RTSP cameras (`rtsp`); [`engine`]:
//!   decode threads, batched analysis (`analyser`: the model, its feature cache and CUDA
//!   graphs), the output files; [`clips`]: event clips, retention;
//! - [`mqtt`]: alerts to a broker; [`feed`] + [`dashboard`]: the web page and its JSON API.
//!
//! Its configuration, `[watch]`, is part of the run configuration
//! ([`crate::run_config::watch`]).

mod analyser;
pub mod clips;
pub mod dashboard;
pub mod engine;
pub mod events;
pub mod feed;
mod live;
pub mod mqtt;
pub mod regions;
mod rtsp;
pub mod source;
pub mod suspend;
pub mod zones;
