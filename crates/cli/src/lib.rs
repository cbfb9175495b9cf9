//! The library behind the `fgstp` binary: the training loop and its pieces, so that they are
//! usable (and tested) without going through the command line.

pub mod config;
pub mod fsutil;
pub mod train;
