//! RGB pixels to the model's input tensor: resize the shorter side, centre-crop, normalise.
//!
//! The classic recipe (torchvision's `Resize(256)` then `CenterCrop(224)`) resizes the whole
//! image and throws most of it away. Here the crop is mapped back onto the source image first and
//! only that region is resampled, straight to `input_size × input_size`, with `fast_image_resize`
//! (SIMD, Pillow-compatible convolution). A convolution resampler places output pixel `i` at
//! source coordinate `left + (i + 0.5) × scale` whatever the box, so the pixels are the same as
//! resize-then-crop, for a fraction of the work. Normalisation is a per-channel lookup table.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use image::imageops::{self, FilterType as ImageFilter};

use crate::error::Error;

/// How a model wants its input: square side, shorter-side resize, per-channel mean and std.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    input_size: u32,
    resize_shorter: u32,
    /// `lut[c][v]` = `(v / 255 − mean[c]) / std[c]`.
    lut: Box<[[f32; 256]; 3]>,
}

/// The region of the source image that becomes the model input, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceCrop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl Preprocessing {
    /// Validates the parameters: the resize must cover the crop and no std may be zero.
    pub fn new(
        input_size: u32,
        resize_shorter: u32,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self, Error> {
        if input_size == 0 || resize_shorter < input_size {
            return Err(Error::Config(format!(
                "--resize-shorter ({resize_shorter}) must be at least --input-size ({input_size}) \
                 and both positive"
            )));
        }
        if std.iter().any(|s| !s.is_normal()) || mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::Config(format!(
                "--std must be finite and non-zero and --mean finite, got mean {mean:?} std {std:?}"
            )));
        }
        let mut lut = Box::new([[0.0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Ok(Self {
            input_size,
            resize_shorter,
            lut,
        })
    }

    /// Side of the square model input.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// Number of `f32` values in one input tensor (3 × side × side).
    pub fn tensor_len(&self) -> usize {
        let side = self.input_size as usize;
        3 * side * side
    }

    /// Size of the image after the shorter side is resized to `--resize-shorter`, the longer side
    /// scaled in proportion and truncated (torchvision's rule).
    pub fn resized_size(&self, width: u32, height: u32) -> (u64, u64) {
        let short = u64::from(self.resize_shorter);
        let (w, h) = (u64::from(width), u64::from(height));
        if w <= h {
            (short, short * h / w)
        } else {
            (short * w / h, short)
        }
    }

    /// Where the centre crop of the resized image lies in the source image.
    pub fn source_crop(&self, width: u32, height: u32) -> SourceCrop {
        let (rw, rh) = self.resized_size(width, height);
        let crop = f64::from(self.input_size);
        // Offsets in the resized image, rounded half to even like Python's round().
        let left = ((rw as f64 - crop) / 2.0).round_ties_even();
        let top = ((rh as f64 - crop) / 2.0).round_ties_even();
        let (sx, sy) = (f64::from(width) / rw as f64, f64::from(height) / rh as f64);
        let (left, top) = (left * sx, top * sy);
        SourceCrop {
            left,
            top,
            // Floating-point rounding must not push the box past the image's edge.
            width: (crop * sx).min(f64::from(width) - left),
            height: (crop * sy).min(f64::from(height) - top),
        }
    }

    /// Writes the NCHW tensor of a square RGB8 image of side `input_size` into `out`.
    fn normalise(&self, pixels: &[u8], out: &mut [f32]) {
        let plane = out.len() / 3;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in pixels.chunks_exact(3).enumerate() {
            r[i] = self.lut[0][usize::from(px[0])];
            g[i] = self.lut[1][usize::from(px[1])];
            b[i] = self.lut[2][usize::from(px[2])];
        }
    }
}

/// Per-worker preprocessing state: the resampler's scratch buffers and the cropped pixels are
/// allocated once and reused for every image.
#[derive(Debug, Default)]
pub struct Preprocessor {
    resizer: Resizer,
    pixels: Vec<u8>,
}

impl Preprocessor {
    /// A preprocessor with empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// The model input for `image`: `[3, input_size, input_size]` values, channel-major.
    pub fn run(&mut self, spec: &Preprocessing, image: &RgbImage) -> Result<Vec<f32>, Error> {
        let mut tensor = Vec::new();
        self.run_into(spec, image, &mut tensor)?;
        Ok(tensor)
    }

    /// [`Preprocessor::run`] into `tensor`, whose capacity a worker reuses from one image to
    /// the next.
    pub fn run_into(
        &mut self,
        spec: &Preprocessing,
        image: &RgbImage,
        tensor: &mut Vec<f32>,
    ) -> Result<(), Error> {
        let side = spec.input_size;
        let crop = spec.source_crop(image.width(), image.height());
        let src = ImageRef::new(
            image.width(),
            image.height(),
            image.as_raw(),
            PixelType::U8x3,
        )
        .map_err(|err| Error::unexpected("source view", err))?;
        self.pixels.resize(spec.tensor_len(), 0);
        let mut dst = Image::from_slice_u8(side, side, &mut self.pixels, PixelType::U8x3)
            .map_err(|err| Error::unexpected("destination view", err))?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(crop.left, crop.top, crop.width, crop.height);
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(Error::Resample)?;
        // Every value is overwritten by `normalise`; resizing only sets the length.
        tensor.resize(spec.tensor_len(), 0.0);
        spec.normalise(&self.pixels, tensor);
        Ok(())
    }
}

/// The textbook pipeline with the `image` crate: resize the whole image (triangle filter), then
/// crop. Slower; kept as the test oracle for [`Preprocessor::run`] and as the benchmark baseline.
pub fn reference(spec: &Preprocessing, image: &RgbImage) -> Vec<f32> {
    let (rw, rh) = spec.resized_size(image.width(), image.height());
    let (rw, rh) = (
        u32::try_from(rw).unwrap_or(u32::MAX),
        u32::try_from(rh).unwrap_or(u32::MAX),
    );
    let resized = imageops::resize(image, rw, rh, ImageFilter::Triangle);
    let side = spec.input_size;
    let left = ((f64::from(rw) - f64::from(side)) / 2.0).round_ties_even() as u32;
    let top = ((f64::from(rh) - f64::from(side)) / 2.0).round_ties_even() as u32;
    let cropped = imageops::crop_imm(&resized, left, top, side, side).to_image();
    let mut tensor = vec![0.0; spec.tensor_len()];
    spec.normalise(cropped.as_raw(), &mut tensor);
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn spec() -> Preprocessing {
        Preprocessing::new(224, 256, [0.5; 3], [0.5; 3]).unwrap()
    }

    /// A smooth but non-trivial image: gradients plus a low-frequency pattern.
    fn photo_like(width: u32, height: u32) -> RgbImage {
        ImageBuffer::from_fn(width, height, |x, y| {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let wave = ((fx * 9.0).sin() * (fy * 7.0).cos() * 0.5 + 0.5) * 255.0;
            Rgb([(fx * 255.0) as u8, (fy * 255.0) as u8, wave as u8])
        })
    }

    #[test]
    fn resize_follows_the_shorter_side_and_crop_is_centred() {
        let p = spec();
        assert_eq!(p.resized_size(600, 400), (384, 256));
        assert_eq!(p.resized_size(451, 300), (384, 256)); // 256 * 451 / 300 = 384.85, truncated
        assert_eq!(p.resized_size(300, 300), (256, 256));
        assert_eq!(p.resized_size(1, 4), (256, 1024));
        let crop = p.source_crop(600, 400);
        // Resized 384x256: crop at (80, 16) of 224x224, scale 600/384 = 1.5625.
        assert_eq!(crop.left, 80.0 * 1.5625);
        assert_eq!(crop.top, 16.0 * 1.5625);
        assert_eq!(crop.width, 224.0 * 1.5625);
        assert_eq!(crop.height, 224.0 * 1.5625);
        // (385 - 224) / 2 = 80.5 rounds to even, 80, as Python does.
        let odd = Preprocessing::new(224, 256, [0.5; 3], [0.5; 3]).unwrap();
        let crop = odd.source_crop(385, 256);
        assert_eq!(crop.left, 80.0);
    }

    #[test]
    fn normalisation_maps_0_and_255_to_minus_1_and_1() {
        let p = spec();
        let img = ImageBuffer::from_fn(300, 300, |x, _| {
            if x < 150 {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        });
        let t = Preprocessor::new().run(&p, &img).unwrap();
        assert_eq!(t.len(), 3 * 224 * 224);
        for c in 0..3 {
            let row = &t[c * 224 * 224..][..224];
            assert_eq!(row[0], -1.0);
            assert_eq!(row[223], 1.0);
        }
    }

    #[test]
    fn cropping_during_the_resize_matches_resize_then_crop() {
        let p = spec();
        let mut pre = Preprocessor::new();
        for (w, h) in [(600, 400), (451, 300), (512, 600), (224, 224), (100, 80)] {
            let img = photo_like(w, h);
            let fast = pre.run(&p, &img).unwrap();
            let slow = reference(&p, &img);
            let max = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let mean = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / fast.len() as f32;
            // One step of 8-bit rounding is 2/255 after (x - 0.5) / 0.5.
            assert!(mean < 2.0 / 255.0, "{w}x{h}: mean diff {mean}");
            assert!(max <= 6.0 / 255.0, "{w}x{h}: max diff {max}");
        }
    }

    #[test]
    fn extreme_aspect_ratios_stay_inside_the_image() {
        let p = spec();
        let mut pre = Preprocessor::new();
        for (w, h) in [(1, 1), (1, 5000), (5000, 1), (3, 2), (257, 255)] {
            let t = pre.run(&p, &photo_like(w, h)).unwrap();
            assert!(t.iter().all(|v| (-1.0..=1.0).contains(v)), "{w}x{h}");
        }
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Preprocessing::new(224, 200, [0.5; 3], [0.5; 3]).is_err());
        assert!(Preprocessing::new(224, 256, [0.5; 3], [0.5, 0.0, 0.5]).is_err());
        assert!(Preprocessing::new(0, 256, [0.5; 3], [0.5; 3]).is_err());
    }
}
