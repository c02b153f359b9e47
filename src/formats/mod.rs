//! Readers and writers of files that come from outside the engine. Everything here treats its
//! input as hostile: sizes stated by a file are checked (with checked arithmetic) against the
//! bytes actually present before anything is allocated from them, and every failure is an
//! error with a message, never a panic.

pub mod activations;
pub mod npy;
