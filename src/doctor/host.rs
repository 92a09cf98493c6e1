//! The machine under the gateway: whether the clock is right (TLS to the
//! providers and Telegram fails on a clock that is off) and the state
//! directory's free disk with the store's size.

use std::path::Path;

use super::Check;
use crate::limits;

/// The year this binary was built (a clock before it is plainly wrong).
const BUILD_YEAR: i64 = match i64::from_str_radix(env!("PINCLAW_BUILD_YEAR"), 10) {
    Ok(year) => year,
    Err(_) => 2026,
};

/// What the kernel says about the clock: synchronised to a time source or
/// not (`None` when it cannot be asked, e.g. under a seccomp filter).
fn kernel_synced() -> Option<bool> {
    let mut tx = std::mem::MaybeUninit::<libc::timex>::zeroed();
    // SAFETY: a zeroed `timex` is a valid value (`modes` = 0 asks for the
    // state and changes nothing); adjtimex only writes into it.
    let state = unsafe { libc::adjtimex(tx.as_mut_ptr()) };
    if state < 0 {
        return None;
    }
    // SAFETY: initialised above (zeroed, then filled by the kernel).
    let tx = unsafe { tx.assume_init() };
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// The clock check. `on_pi`: a Raspberry Pi has no battery-backed clock
/// (before the Pi 5), so an unsynchronised clock there is a failure; on
/// other machines a plausible clock will do.
pub fn clock(on_pi: bool) -> Check {
    let now_ms = crate::ids::now_ms();
    let now = crate::agent::tools::iso8601(now_ms);
    let year = crate::automation::schedule::civil::civil_from_days(now_ms.div_euclid(86_400_000)).0;
    let hint = Some(
        "connect to the network and turn time synchronisation on: sudo timedatectl set-ntp true"
            .to_owned(),
    );
    if year < BUILD_YEAR {
        return Check::fail(
            "clock",
            format!(
                "the clock reads {now}, before this pinclaw was built ({BUILD_YEAR}): TLS to the providers and Telegram will fail"
            ),
            hint,
        );
    }
    match kernel_synced() {
        Some(true) => Check::pass("clock", format!("synchronised: {now}")),
        Some(false) if on_pi => Check::fail(
            "clock",
            format!(
                "not synchronised (the kernel says so), reading {now}: a Pi keeps no time while off, so TLS may fail until it is"
            ),
            hint,
        ),
        Some(false) => Check::pass(
            "clock",
            format!(
                "{now}: plausible, though the kernel says it is not synchronised (fine off a Pi)"
            ),
        ),
        None => Check::pass(
            "clock",
            format!("{now}: plausible (the kernel's sync state cannot be read here)"),
        ),
    }
}

/// Free and total bytes of the filesystem holding `path`.
#[allow(clippy::unnecessary_cast)] // the field types are 32-bit on 32-bit glibc
fn space(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid, writable
    // statvfs; statvfs only writes into it.
    if unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: filled by a successful statvfs (and zeroed before).
    let st = unsafe { st.assume_init() };
    let block = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(block),
        (st.f_blocks as u64).saturating_mul(block),
    ))
}

/// `1.4 MB`, `12.3 GB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

/// Free disk where the state directory is, and the store's size.
pub fn disk(state_dir: &Path) -> Check {
    // Before the first start the directory does not exist: its filesystem
    // is the nearest existing parent's.
    let existing = state_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let (free, total) = match space(existing) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                "disk",
                format!(
                    "{}: cannot read the filesystem's size: {e}",
                    state_dir.display()
                ),
                None,
            );
        }
    };
    let store = state_dir.join("state.redb");
    let store_size = match std::fs::metadata(&store) {
        Ok(m) => format!("the store is {}", size(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "no store yet (the gateway creates it at its first start)".to_owned()
        }
        Err(e) => format!("the store's size cannot be read ({e})"),
    };
    let detail = format!(
        "{}: {} free of {}; {store_size}",
        state_dir.display(),
        size(free),
        size(total)
    );
    if free < limits::DOCTOR_MIN_FREE_DISK_BYTES {
        return Check::fail(
            "disk",
            format!(
                "{detail} (below {})",
                size(limits::DOCTOR_MIN_FREE_DISK_BYTES)
            ),
            Some(
                "free space on that filesystem: sudo apt clean, sudo journalctl --vacuum-size=50M, old files"
                    .into(),
            ),
        );
    }
    Check::pass("disk", detail)
}
