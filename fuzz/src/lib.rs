//! Helpers shared by the fuzz targets.
//!
//! # Split header
//!
//! The streaming targets read their input as a small header that says where
//! to cut the body, then the body itself:
//!
//! ```text
//! byte 0            n = byte & 7: how many cut points follow (0..=7)
//! bytes 1..=2n      n little-endian u16 cut points (each taken modulo body length + 1)
//! the rest          the body fed to the decoder
//! ```
//!
//! A seed with header `00` is fed whole (and byte by byte); the fuzzer mutates
//! the header to explore other splits.

/// Split `data` into the body and its sorted cut points (see the module docs).
pub fn split_input(data: &[u8]) -> (&[u8], Vec<usize>) {
    let Some((&first, rest)) = data.split_first() else {
        return (data, Vec::new());
    };
    let n = usize::from(first & 7);
    let header_len = (2 * n).min(rest.len());
    let (header, body) = rest.split_at(header_len);
    let mut cuts: Vec<usize> = header
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    (body, cuts)
}

/// The pieces of `body` between sorted cut points (empty pieces included: a
/// decoder must accept an empty push).
pub fn pieces<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, body.len());
        out.push(&body[start..cut]);
        start = cut;
    }
    out.push(&body[start..]);
    out
}

/// One piece per byte.
pub fn bytewise(body: &[u8]) -> Vec<&[u8]> {
    body.chunks(1).collect()
}
