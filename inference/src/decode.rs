//! Image bytes to RGB8 pixels, with limits checked before anything large is allocated.
//!
//! The format is sniffed from the content (never trusted from a header or a file name). The
//! decoder first reads only the image header; the declared width × height is checked against
//! `--max-pixels` and the memory the decoded pixels need against an allocation budget, and only
//! then are the pixels decoded. A decompression bomb (a few hundred bytes declaring 30000×30000)
//! is therefore refused in microseconds, without allocating its pixels.

use std::io::Cursor;

use image::error::{ImageError, LimitErrorKind};
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::Error;

/// Formats the service accepts (the `image` crate features this crate is built with).
const ACCEPTED: &[ImageFormat] = &[
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

/// Room for decoder-internal buffers beyond the output pixels (JPEG coefficient rows, PNG
/// scanlines, GIF palettes): small next to any image that passes the pixel limit.
const DECODER_OVERHEAD_BYTES: u64 = 64 * 1024 * 1024;

/// The bounds one decode must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest total allocation of the decoder: the pixels at 4 bytes each (RGBA8) plus a fixed
    /// overhead. 16-bit images with alpha need 8 bytes per pixel and so get half the pixels.
    pub max_alloc_bytes: u64,
}

impl DecodeLimits {
    /// Limits for images of at most `max_pixels` pixels.
    pub fn new(max_pixels: u64) -> Self {
        Self {
            max_pixels,
            max_alloc_bytes: max_pixels
                .saturating_mul(4)
                .saturating_add(DECODER_OVERHEAD_BYTES),
        }
    }

    fn image_limits(&self) -> Limits {
        // Neither side can exceed the pixel budget; the decoders check these strict limits
        // against the header themselves.
        let side = u32::try_from(self.max_pixels).unwrap_or(u32::MAX);
        let mut limits = Limits::default();
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}

/// Decodes JPEG (baseline, progressive, CMYK), PNG (8/16-bit, gray, alpha), WebP, GIF (first
/// frame) or BMP into RGB8. Alpha is dropped, gray is replicated, 16-bit is scaled to 8-bit.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, Error> {
    decode_into(bytes, limits, Vec::new())
}

/// Like [`decode`], reusing `pixels` for the result: an RGB8 image (most JPEGs and PNGs) is
/// decoded straight into it, without a conversion or a fresh allocation; a worker hands back
/// the last image's buffer (`RgbImage::into_raw`) for the next one.
pub fn decode_into(
    bytes: &[u8],
    limits: &DecodeLimits,
    pixels: Vec<u8>,
) -> Result<RgbImage, Error> {
    guarded(move || {
        let decoder = checked_decoder(bytes, limits)?;
        if decoder.color_type() != ColorType::Rgb8 {
            return Ok(DynamicImage::from_decoder(decoder)
                .map_err(image_error)?
                .into_rgb8());
        }
        let (width, height) = decoder.dimensions();
        let mut pixels = pixels;
        pixels.clear();
        // Within the allocation budget: checked from the header by `checked_decoder`.
        pixels.resize(
            usize::try_from(decoder.total_bytes()).unwrap_or(usize::MAX),
            0,
        );
        decoder.read_image(&mut pixels).map_err(image_error)?;
        RgbImage::from_raw(width, height, pixels)
            .ok_or_else(|| Error::InvalidImage("the decoder returned too few pixels".to_owned()))
    })
}

/// Like [`decode`], but keeps the decoded colour type (no conversion).
pub fn decode_dynamic(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, Error> {
    guarded(|| DynamicImage::from_decoder(checked_decoder(bytes, limits)?).map_err(image_error))
}

/// Runs a decode, turning a decoder panic into a client error: a decoder that panics on
/// malformed data is still looking at malformed data, so the client gets a 4xx, not a 500.
fn guarded<T>(
    decode: impl FnOnce() -> Result<T, Error> + std::panic::UnwindSafe,
) -> Result<T, Error> {
    std::panic::catch_unwind(decode).unwrap_or_else(|_| {
        Err(Error::InvalidImage(
            "the decoder failed on malformed data".to_owned(),
        ))
    })
}

/// The decoder of `bytes`, once its header has passed every limit; no pixel is decoded yet.
fn checked_decoder<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<impl ImageDecoder + 'a, Error> {
    let format = image::guess_format(bytes).map_err(|_| Error::NotAnImage)?;
    if !ACCEPTED.contains(&format) {
        return Err(Error::NotAnImage);
    }
    if format == ImageFormat::Jpeg {
        // The JPEG decoder pads a truncated scan with grey instead of failing.
        jpeg_is_complete(bytes)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.image_limits());
    // Reads the header only.
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::TooManyPixels(format!(
            "{width}x{height} = {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    if pixels == 0 {
        return Err(Error::InvalidImage(format!(
            "the image declares {width}x{height} pixels"
        )));
    }
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc_bytes {
        return Err(Error::TooManyPixels(format!(
            "decoding {width}x{height} {:?} needs {needed} bytes, the limit is {}",
            decoder.color_type(),
            limits.max_alloc_bytes
        )));
    }
    Ok(decoder)
}

/// Walks the JPEG marker structure from SOI to EOI: segments by their length, entropy-coded
/// data up to the next marker. Data after EOI (camera trailers, motion-photo videos) is fine; a
/// stream that ends before EOI is truncated. An EOI inside an embedded EXIF thumbnail does not
/// count, since whole segments are skipped by length.
fn jpeg_is_complete(bytes: &[u8]) -> Result<(), Error> {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    let truncated = || Error::InvalidImage("the JPEG data is truncated (no end of image)".into());
    let mut at = 2; // after SOI
    loop {
        // A marker: 0xFF, optional fill bytes 0xFF, then the marker code.
        if *bytes.get(at).ok_or_else(truncated)? != 0xFF {
            return Err(Error::InvalidImage(format!(
                "JPEG marker expected at byte {at}"
            )));
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *bytes.get(at).ok_or_else(truncated)?;
        at += 1;
        match marker {
            EOI => return Ok(()),
            // Standalone markers: RSTn, TEM, SOI.
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        let length = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or_else(truncated)?;
        at += length;
        if marker == SOS {
            at = skip_entropy_coded(bytes, at).ok_or_else(truncated)?;
        }
    }
}

/// The position of the marker that ends the entropy-coded data starting at `at`: the next 0xFF
/// that is neither a stuffed 0xFF00 nor a restart marker. `None` if the data ends first.
fn skip_entropy_coded(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
        match bytes.get(at + 1)? {
            0x00 | 0xD0..=0xD7 => at += 2,
            _ => return Some(at),
        }
    }
}

/// Sorts a decoder error into the service's errors, keeping it as their cause.
fn image_error(err: ImageError) -> Error {
    match &err {
        ImageError::Limits(limit)
            if matches!(
                limit.kind(),
                LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory
            ) =>
        {
            Error::DecoderLimit(err)
        }
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated(err)
        }
        _ => Error::Decode(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img: RgbImage = ImageBuffer::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_what_it_encoded() {
        let img = decode(&png(31, 17), &DecodeLimits::new(1_000)).unwrap();
        assert_eq!(img.dimensions(), (31, 17));
        assert_eq!(img.get_pixel(30, 16), &Rgb([30, 16, 7]));
    }

    #[test]
    fn decoding_into_a_reused_buffer_gives_the_same_pixels() {
        let limits = DecodeLimits::new(1_000_000);
        let img: RgbImage = ImageBuffer::from_fn(37, 21, |x, y| Rgb([x as u8, y as u8, 3]));
        let rgba = DynamicImage::ImageRgb8(img.clone()).to_rgba8();
        let mut rgba_png = Vec::new();
        rgba.write_to(&mut Cursor::new(&mut rgba_png), ImageFormat::Png)
            .unwrap();
        let mut buffer = vec![9u8; 10_000];
        for bytes in [png(37, 21), rgba_png, encode(&img, ImageFormat::Bmp)] {
            let fresh = decode(&bytes, &limits).unwrap();
            let reused = decode_into(&bytes, &limits, buffer).unwrap();
            assert_eq!(fresh, reused);
            buffer = reused.into_raw();
        }
    }

    #[test]
    fn refuses_more_pixels_than_the_limit_before_decoding() {
        let err = decode(&png(40, 30), &DecodeLimits::new(40 * 30 - 1)).unwrap_err();
        assert_eq!(err.code(), "too_many_pixels", "{err}");
        assert!(decode(&png(40, 30), &DecodeLimits::new(40 * 30)).is_ok());
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn every_format_decodes_whole_and_fails_truncated() {
        let img: RgbImage =
            ImageBuffer::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 99]));
        let limits = DecodeLimits::new(1_000_000);
        for format in ACCEPTED {
            let bytes = encode(&img, *format);
            let decoded = decode(&bytes, &limits).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(decoded.dimensions(), (64, 48), "{format:?}");
            // Cut inside the pixel data (the last bytes of a PNG are a trailer chunk).
            for cut in [bytes.len() / 2, bytes.len() * 9 / 10] {
                let err = decode(&bytes[..cut], &limits).err().unwrap_or_else(|| {
                    panic!("{format:?} cut at {cut} of {} decodes", bytes.len())
                });
                assert_eq!(
                    err.code(),
                    "invalid_image",
                    "{format:?} cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn jpeg_completeness_follows_the_marker_structure() {
        let img: RgbImage = ImageBuffer::from_fn(40, 40, |x, y| Rgb([x as u8 * 6, y as u8 * 6, 0]));
        let jpeg = encode(&img, ImageFormat::Jpeg);
        assert!(jpeg_is_complete(&jpeg).is_ok());
        // A trailer after EOI is allowed.
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"....ftypmp42 and a video");
        assert!(jpeg_is_complete(&trailer).is_ok());
        // An EOI inside a segment (an EXIF thumbnail) does not end the image.
        let mut with_app1 = jpeg[..2].to_vec();
        with_app1.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9]);
        with_app1.extend_from_slice(&jpeg[2..jpeg.len() / 2]);
        assert!(jpeg_is_complete(&with_app1).is_err());
        for cut in 3..jpeg.len() - 1 {
            assert!(jpeg_is_complete(&jpeg[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// Small valid files of every accepted format, encoded once.
    fn samples() -> &'static [Vec<u8>] {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(|| {
            let img: RgbImage =
                ImageBuffer::from_fn(24, 16, |x, y| Rgb([(x * 9) as u8, (y * 13) as u8, 40]));
            ACCEPTED.iter().map(|f| encode(&img, *f)).collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Corrupted files are errors with a client code, never panics: the service must answer
        /// 4xx to garbage, whatever the decoders make of it.
        #[test]
        fn corrupted_files_are_client_errors(
            which in 0..ACCEPTED.len(),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..12,
            ),
            keep in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let mut bytes = samples()[which].clone();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(keep) = keep {
                bytes.truncate(keep.index(bytes.len()) + 1);
            }
            if let Err(err) = decode(&bytes, &DecodeLimits::new(100_000)) {
                proptest::prop_assert!(err.status().is_client_error(), "{err}");
            }
        }
    }

    #[test]
    fn sorts_failures_into_codes() {
        let limits = DecodeLimits::new(1_000_000);
        let full = png(64, 64);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("text", b"hello, world".to_vec(), "not_an_image"),
            ("empty", Vec::new(), "not_an_image"),
            ("tiff", b"II*\0........".to_vec(), "not_an_image"),
            (
                "truncated",
                full[..full.len() / 2].to_vec(),
                "invalid_image",
            ),
            ("header only", full[..40].to_vec(), "invalid_image"),
        ];
        for (name, bytes, code) in cases {
            let err = decode(&bytes, &limits).expect_err(name);
            assert_eq!(err.code(), code, "{name}: {err}");
        }
    }
}
