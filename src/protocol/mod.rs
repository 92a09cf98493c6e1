//! Wire types only.
