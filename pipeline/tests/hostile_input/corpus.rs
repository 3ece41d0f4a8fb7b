//! The hostile corpus, generated in code so that every run sends the same bytes: the real
//! photos, re-encodings of them the services must still classify, broken files, decompression
//! bombs and oversized bodies.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Bytes;
use image::codecs::gif::GifEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// The "50 MB body": far above every service's body limit (10 to 16 MB).
pub const HUGE_BODY_BYTES: usize = 50 * 1024 * 1024;

/// Side of the PNG bombs: 30000 × 30000 RGB is 2.7 GB once decoded.
pub const BOMB_SIDE: u32 = 30_000;

/// A path relative to the repository root.
pub fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A photo of `images/` or of the inference test fixtures.
pub fn photo(name: &str) -> Vec<u8> {
    let pool = repo("images").join(name);
    let path = if pool.exists() {
        pool
    } else {
        repo("inference/tests/fixtures").join(name)
    };
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `coffee.png`, decoded once.
pub fn coffee() -> &'static DynamicImage {
    static COFFEE: OnceLock<DynamicImage> = OnceLock::new();
    COFFEE.get_or_init(|| image::load_from_memory(&photo("coffee.png")).expect("coffee.png"))
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap_or_else(|err| panic!("{format:?}: {err}"));
    out
}

/// `n` bytes from a fixed-seed xorshift generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// The first half of a real JPEG: a valid header, the scan cut off.
pub fn truncated_jpeg() -> Vec<u8> {
    let jpeg = photo("china.jpg");
    jpeg[..jpeg.len() / 2].to_vec()
}

/// `coffee.png` as a 16-bit RGB PNG.
pub fn coffee_16_bit() -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb16(coffee().to_rgb16()),
        ImageFormat::Png,
    )
}

/// `coffee.png` as an 8-bit grayscale PNG.
pub fn coffee_gray() -> Vec<u8> {
    encode(
        &DynamicImage::ImageLuma8(coffee().to_luma8()),
        ImageFormat::Png,
    )
}

/// `coffee.png` with a real alpha channel: opacity falls from 255 to 55 left to right, so the
/// colour values are those of the photo and only a decoder that mishandles alpha would differ.
pub fn coffee_alpha() -> Vec<u8> {
    let mut rgba = coffee().to_rgba8();
    let width = rgba.width();
    for (x, _, pixel) in rgba.enumerate_pixels_mut() {
        pixel.0[3] = (255 - 200 * x / width) as u8;
    }
    encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)
}

/// A two-frame animated GIF: `coffee.png`, then `chelsea.png` (a cat). Only the first frame is
/// classified, so the answer is the coffee's.
pub fn animated_gif() -> Vec<u8> {
    let first = coffee().to_rgba8();
    let cat = image::load_from_memory(&photo("chelsea.png")).expect("chelsea.png");
    let second = image::imageops::resize(
        &cat.to_rgba8(),
        first.width(),
        first.height(),
        FilterType::Triangle,
    );
    let mut out = Vec::new();
    {
        // Speed 10 of 30: a good enough palette in a fraction of the default's time.
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        encoder
            .encode_frames([Frame::new(first), Frame::new(second)])
            .expect("GIF encodes");
    }
    out
}

/// Number of image descriptors (frames) in a GIF stream, counted from its blocks.
pub fn gif_frames(gif: &[u8]) -> usize {
    // Header (6), logical screen descriptor (7), optional global colour table.
    let mut at = 13;
    if gif[10] & 0x80 != 0 {
        at += 3 << ((gif[10] & 7) + 1);
    }
    let mut frames = 0;
    let skip_sub_blocks = |mut at: usize| {
        while gif[at] != 0 {
            at += usize::from(gif[at]) + 1;
        }
        at + 1
    };
    loop {
        match gif[at] {
            0x21 => at = skip_sub_blocks(at + 2),
            0x2C => {
                frames += 1;
                let packed = gif[at + 9];
                at += 10;
                if packed & 0x80 != 0 {
                    at += 3 << ((packed & 7) + 1);
                }
                at = skip_sub_blocks(at + 1); // LZW minimum code size, then data
            }
            _ => return frames, // 0x3B: trailer
        }
    }
}

/// A 1×1 PNG.
pub fn one_pixel() -> Vec<u8> {
    let img = RgbImage::from_pixel(1, 1, Rgb([200, 120, 40]));
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

/// A `width`×`height` PNG with a colour gradient (8000×2: "extremely wide").
pub fn strip(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x % 256) as u8, (y * 100) as u8, (x / 32 % 256) as u8, 255])
    });
    encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

/// The 50 MB body, allocated once and shared by every row that sends it.
pub fn huge_body() -> Bytes {
    static HUGE: OnceLock<Bytes> = OnceLock::new();
    HUGE.get_or_init(|| Bytes::from(vec![b'A'; HUGE_BODY_BYTES]))
        .clone()
}

/// `depth` opening brackets: JSON nested deeper than any parser should recurse.
pub fn nested_json(prefix: &str, depth: usize) -> String {
    let mut text = String::with_capacity(prefix.len() + depth);
    text.push_str(prefix);
    text.extend(std::iter::repeat_n('[', depth));
    text
}

// ---------------------------------------------------------------------------------- bombs

pub use test_support::bombs::{png_deflate_bomb, png_header_bomb};

/// A real JPEG (`china.jpg`) whose frame header declares `side`×`side` pixels.
pub fn jpeg_bomb(side: u16) -> Vec<u8> {
    test_support::bombs::jpeg_bomb(photo("china.jpg"), side)
}
