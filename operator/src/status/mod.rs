//! Status decisions as pure functions: observed objects in, the status to write out. The
//! reconcilers only compare it with the live status and write when it differs.

pub mod conditions;
pub mod experiment;
pub mod gateway;
pub mod queue;
pub mod readout;
