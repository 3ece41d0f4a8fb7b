//! `cargo bench -p harness-core`: the cost of checking a ~100 KB base64 image payload.
//!
//! [`validate`] runs on every `/enqueue`. Three timings of the same bytes, in the same run:
//! copying them (the floor: reading 100 KB once), validating a payload as every encoder writes
//! it (the SIMD path), and validating one whose last symbol has non-zero trailing bits, which
//! the SIMD check declines and the byte-at-a-time scan then accepts (the fallback path).

use std::hint::black_box;
use std::time::Instant;

use harness_core::image_payload::{encode, validate};

const SOURCE_BYTES: usize = 75_000;
const ITERATIONS: u32 = 4_000;
const ROUNDS: usize = 7;

fn main() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let raw: Vec<u8> = (0..SOURCE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // 75 001 bytes leave two symbols and '==' at the end; 'B' as the second of them sets a
    // trailing bit, which decoders accept and the SIMD check does not.
    let canonical = encode(&[raw.as_slice(), &[0]].concat());
    let mut lenient = canonical.clone().into_bytes();
    let last_symbol = lenient.len() - 3;
    lenient[last_symbol] = b'B';
    let lenient = String::from_utf8(lenient).expect("ASCII");
    assert_eq!(validate(&canonical), validate(&lenient));

    let mut buffer = vec![0u8; canonical.len()];
    let copy = time(|| {
        buffer.copy_from_slice(black_box(canonical.as_bytes()));
        black_box(&buffer);
    });
    let simd = time(|| {
        black_box(validate(black_box(&canonical))).expect("valid");
    });
    let scan = time(|| {
        black_box(validate(black_box(&lenient))).expect("valid");
    });
    println!(
        "validate a {} byte base64 payload (median of {ROUNDS} rounds of {ITERATIONS}):",
        canonical.len()
    );
    println!("  memcpy of the same bytes   {:>7.2} us", copy * 1e6);
    println!(
        "  validate, SIMD path        {:>7.2} us  ({:.1} x memcpy)",
        simd * 1e6,
        simd / copy
    );
    println!(
        "  validate, fallback scan    {:>7.2} us  ({:.1} x memcpy, {:.1} x the SIMD path)",
        scan * 1e6,
        scan / copy,
        scan / simd
    );
}

/// Median seconds per call.
fn time(mut call: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                call();
            }
            started.elapsed().as_secs_f64() / f64::from(ITERATIONS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}
