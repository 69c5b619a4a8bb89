//! The merge policies live in `kan-core` ([`kan_core::merge`]), one implementation that the
//! gateway serves with and `kan eval` scores with.

pub use kan_core::merge::*;
