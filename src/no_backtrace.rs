//! Release builds on musl carry no stack unwinder.
//!
//! With `panic = "abort"` nothing unwinds, and the release binary is
//! stripped and built without std's symbolizer, so the only user of the
//! unwinder left is std's panic hook printing raw return addresses when
//! `RUST_BACKTRACE` is set: numbers no one can map back to code. build.rs
//! links those two calls (`--wrap`) to the definitions below, which answer
//! the walk with "end of stack", so the static libunwind's stack walker
//! (~38 KB of the aarch64 binary) is left out. A panic still prints its
//! message and location.

use std::ffi::{c_int, c_void};

/// `_URC_END_OF_STACK`: the walk is over before it began.
const END_OF_STACK: c_int = 5;

/// The unwinder's stack walk: walks nothing.
#[unsafe(no_mangle)]
extern "C" fn __wrap__Unwind_Backtrace(
    _trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    _arg: *mut c_void,
) -> c_int {
    END_OF_STACK
}

/// A frame's instruction pointer: never asked, as no frame is walked.
#[unsafe(no_mangle)]
extern "C" fn __wrap__Unwind_GetIP(_context: *mut c_void) -> usize {
    0
}
