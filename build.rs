//! Release binaries are linked without `.eh_frame_hdr`: with
//! `panic = "abort"` nothing unwinds, and the table (about 150 KB of the
//! aarch64 binary) only speeds up the unwinder's lookups for a backtrace. A
//! panic still prints its message and location, then aborts;
//! `RUST_BACKTRACE` prints no frames; gdb and core dumps read `.eh_frame`
//! itself. Tests and debug builds are linked as usual (they unwind).
//!
//! On aarch64 the segments are aligned to 16 KiB instead of GNU ld's
//! default 64 KiB: Raspberry Pi kernels use 4 KiB pages (16 KiB on the
//! Pi 5's default kernel), and the larger alignment only pads the file
//! (up to 64 KiB of zeros between the code and the data).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
        if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
            println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=16384");
        }
    }
}
