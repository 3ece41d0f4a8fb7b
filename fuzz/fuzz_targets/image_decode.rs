//! Fuzzes inference's image path: `inference::decode::decode` under small limits, then the
//! model's preprocessing (`inference::preprocess`).
//!
//! Properties, for any bytes:
//! - nothing panics (a decoder panic is a finding even though the service turns it into a 422);
//! - a refusal is a client error with one of the stable codes `not_an_image`, `invalid_image`
//!   or `too_many_pixels`;
//! - an accepted image has between 1 and `max_pixels` pixels and preprocesses into a tensor of
//!   the model's size with every value in [-1, 1];
//! - memory stays within the limits: the bytes live at once never exceed the decoder's
//!   allocation budget plus the RGB8 copy (a counting global allocator measures it), and a
//!   `too_many_pixels` refusal (a decompression bomb) allocates almost nothing.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use inference::decode::{self, DecodeLimits};
use inference::preprocess::{Preprocessing, Preprocessor};
use libfuzzer_sys::fuzz_target;

/// Small next to the service's default (50 M) so that a bomb is cheap to build and to refuse.
const MAX_PIXELS: u64 = 4_000_000;

/// Decoders keep a few buffers (a PNG scan line, JPEG tables, a GIF palette) before they can
/// refuse an image; a refusal for size must stay far below the image's own footprint.
const REFUSAL_BUDGET_BYTES: usize = 4 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::new(MAX_PIXELS);
    let before = PEAK.reset();
    let decoded = decode::decode(data, &limits);
    let decode_peak = PEAK.since(before);
    let image = match decoded {
        Ok(image) => image,
        Err(err) => {
            assert!(
                matches!(
                    err.code(),
                    "not_an_image" | "invalid_image" | "too_many_pixels"
                ) && err.status().is_client_error(),
                "unexpected error {} ({}): {err}",
                err.code(),
                err.status()
            );
            if err.code() == "too_many_pixels" {
                assert!(
                    decode_peak <= REFUSAL_BUDGET_BYTES,
                    "refusing an oversized image allocated {decode_peak} bytes: {err}"
                );
            }
            return;
        }
    };
    let pixels = u64::from(image.width()) * u64::from(image.height());
    assert!((1..=MAX_PIXELS).contains(&pixels), "{pixels} pixels");
    // The decoded image (at most `max_alloc_bytes`, checked against the header) plus its RGB8
    // conversion.
    let budget = limits.max_alloc_bytes + 3 * MAX_PIXELS;
    assert!(
        decode_peak as u64 <= budget,
        "decoding {}x{} allocated {decode_peak} bytes, budget {budget}",
        image.width(),
        image.height()
    );

    let spec = spec();
    let tensor = Preprocessor::new()
        .run(spec, &image)
        .unwrap_or_else(|err| panic!("a decoded image does not preprocess: {err}"));
    assert_eq!(tensor.len(), spec.tensor_len());
    assert!(
        tensor.iter().all(|v| (-1.0..=1.0).contains(v)),
        "values outside [-1, 1]"
    );
});

/// The shipped model's preprocessing (`inference/model/MODEL.md`).
fn spec() -> &'static Preprocessing {
    static SPEC: OnceLock<Preprocessing> = OnceLock::new();
    SPEC.get_or_init(|| {
        Preprocessing::new(224, 256, [0.5; 3], [0.5; 3]).expect("valid preprocessing")
    })
}

/// Counts the bytes live on the heap and their high-water mark. libFuzzer runs one input at a
/// time on one thread, so a reset before each input gives that input's peak.
struct Counting {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Counting {
    /// Starts a new measurement; returns the bytes live now.
    fn reset(&self) -> usize {
        let live = self.live.load(Ordering::Relaxed);
        self.peak.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes allocated on top of `baseline` since the matching [`Counting::reset`].
    fn since(&self, baseline: usize) -> usize {
        self.peak.load(Ordering::Relaxed).saturating_sub(baseline)
    }

    fn grew(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[global_allocator]
static PEAK: Counting = Counting {
    live: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller, who upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract for `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Both blocks may exist for a moment; counting the new one on top of the old one
            // first keeps the peak conservative.
            self.grew(new_size);
            self.shrank(layout.size());
        }
        new
    }
}
