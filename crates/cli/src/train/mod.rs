//! Training: the reference's loss and optimiser, with state we can checkpoint and resume.

pub mod board;
pub mod loss;
pub mod optim;
