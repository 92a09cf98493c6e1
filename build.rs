//! Release binaries are linked without `.eh_frame_hdr`: with
//! `panic = "abort"` nothing unwinds, and the table (about 150 KB of the
//! aarch64 binary) only speeds up the unwinder's lookups for a backtrace. A
//! panic still prints its message and location, then aborts;
//! `RUST_BACKTRACE` prints no frames; gdb and core dumps read `.eh_frame`
//! itself. Tests and debug builds are linked as usual (they unwind).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    }
}
