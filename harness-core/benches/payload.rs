//! `cargo bench -p harness-core`: the cost of checking a ~100 KB base64 image payload.
//!
//! [`validate`] runs on every `/enqueue`. Three timings of the same bytes (the start of a photo
//! from `images/`), in the same run:
//! copying them (the floor: reading 100 KB once), validating a payload as every encoder writes
//! it (the SIMD path), and validating one whose last symbol has non-zero trailing bits, which
//! the SIMD check declines and the byte-at-a-time scan then accepts (the fallback path).

use std::hint::black_box;
use std::time::Instant;

use harness_core::image_payload::{encode, validate};

/// Bytes of a real photo from the image pool: 75 001 of them encode to ~100 KB of base64.
const SOURCE_BYTES: usize = 75_001;
const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/flower.jpg");
const ITERATIONS: u32 = 4_000;
const ROUNDS: usize = 7;
const STANDARD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn main() -> std::io::Result<()> {
    let photo = std::fs::read(PHOTO)?;
    let raw = &photo[..SOURCE_BYTES.min(photo.len())];
    assert_eq!(
        raw.len() % 3,
        1,
        "the payload must end in two symbols and '=='"
    );
    let canonical = encode(raw);
    // The second of the last two symbols carries 2 bits of the last byte and 4 unused bits;
    // setting one of those gives a payload decoders accept and the SIMD check declines.
    let last = raw[raw.len() - 1];
    let mut lenient = canonical.clone().into_bytes();
    let at = lenient.len() - 3;
    lenient[at] = STANDARD_ALPHABET[usize::from(last & 3) << 4 | 1];
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
    Ok(())
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
