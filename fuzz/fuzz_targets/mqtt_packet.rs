//! `mqtt::packet::Decoder` on any bytes a broker may send: whole, byte by
//! byte and in fuzzer-chosen pieces (see the split header in `src/lib.rs`),
//! with the default cap and a small one. Every way must give the same
//! packets and the same error; no byte buffer (decoder buffer, topic,
//! payload) is ever allocated over the cap; every decoded packet encodes
//! again and decodes to itself.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use pinclaw::mqtt::packet::{DecodeError, Decoder, Packet};
use pinclaw_fuzz::{bytewise, pieces, split_input};

/// The system allocator, remembering the largest byte buffer (alignment 1:
/// `Vec<u8>`, `String`) allocated since the last reset.
struct Watch;

static LARGEST_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == 1 {
            LARGEST_BYTES.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() == 1 {
            LARGEST_BYTES.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watch = Watch;

type Outcome = (Vec<Packet>, Result<(), DecodeError>);

fn run(max: usize, pieces: &[&[u8]]) -> Outcome {
    LARGEST_BYTES.store(0, Ordering::Relaxed);
    let mut decoder = Decoder::new(max);
    let mut out = Vec::new();
    let mut result = Ok(());
    for piece in pieces {
        result = decoder.push(piece, &mut out);
        assert!(decoder.buffered() <= max, "buffered over the cap");
        if result.is_err() {
            break;
        }
    }
    let largest = LARGEST_BYTES.load(Ordering::Relaxed);
    assert!(largest <= max, "a {largest}-byte buffer with a {max}-byte cap");
    if let Err(DecodeError::TooLarge { size, max: cap }) = &result {
        assert!(size > cap && *cap == max);
    }
    (out, result)
}

fuzz_target!(|data: &[u8]| {
    let (body, cuts) = split_input(data);
    for max in [pinclaw::limits::MQTT_MAX_PACKET_BYTES, 64] {
        let whole = run(max, &[body]);
        assert_eq!(run(max, &pieces(body, &cuts)), whole, "split {cuts:?}");
        assert_eq!(run(max, &bytewise(body)), whole, "bytewise");
        for packet in &whole.0 {
            let mut bytes = Vec::new();
            packet.encode(&mut bytes).expect("a decoded packet encodes");
            assert!(bytes.len() <= max, "re-encoded over the cap");
            assert_eq!(run(max, &[&bytes]), (vec![packet.clone()], Ok(())));
        }
    }
});
