//! The image pool: every picture of the `--images` folder, read and base64-encoded once before
//! the test so that sending a request costs a copy, not a file read or an encode.
//!
//! Files with the extensions `.jpg .jpeg .png .webp` (any case) are loaded in name order.
//! With `--resize N` each one is decoded and re-encoded as an N×N JPEG first. A file that
//! cannot be read or decoded is reported and skipped; a pool with no usable image is an error.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::ImageReader;
use image::imageops::FilterType;

/// File extensions the pool picks up, compared case-insensitively.
pub const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// JPEG quality of `--resize` re-encodes.
const JPEG_QUALITY: u8 = 90;

/// One image, ready to send.
#[derive(Debug, Clone)]
pub struct PoolImage {
    pub name: String,
    /// Standard base64 with padding, no `data:` prefix.
    pub base64: String,
    pub width: u32,
    pub height: u32,
    /// Size of the encoded file (after any resize), in bytes.
    pub bytes: usize,
}

/// A file the pool could not use, and why.
#[derive(Debug, Clone)]
pub struct SkippedImage {
    pub path: PathBuf,
    pub reason: String,
}

/// Why no pool could be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot read the image folder {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no usable image in {dir} (looked for .jpg .jpeg .png .webp; {skipped} file(s) skipped)"
    )]
    Empty { dir: PathBuf, skipped: usize },
    #[error("--resize must be between 1 and 8192 pixels, got {0}")]
    BadResize(u32),
}

/// The images a test cycles through: request `seq` sends image `seq % len`.
#[derive(Debug, Clone)]
pub struct ImagePool {
    images: Vec<PoolImage>,
}

impl ImagePool {
    /// Builds a pool from images already in memory (tests, the in-process demo).
    pub fn from_images(images: Vec<PoolImage>) -> Option<Self> {
        (!images.is_empty()).then_some(Self { images })
    }

    /// Loads a folder. Blocking (file reads, decoding): call from `spawn_blocking`, or use
    /// [`ImagePool::load`].
    pub fn load_blocking(
        dir: &Path,
        resize: Option<u32>,
    ) -> Result<(Self, Vec<SkippedImage>), PoolError> {
        if let Some(n) = resize
            && !(1..=8192).contains(&n)
        {
            return Err(PoolError::BadResize(n));
        }
        let dir_error = |source| PoolError::Dir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(dir_error)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| has_image_extension(path))
            .collect();
        paths.sort();

        let mut images = Vec::with_capacity(paths.len());
        let mut skipped = Vec::new();
        for path in paths {
            match load_one(&path, resize) {
                Ok(image) => images.push(image),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping image");
                    skipped.push(SkippedImage { path, reason });
                }
            }
        }
        match Self::from_images(images) {
            Some(pool) => Ok((pool, skipped)),
            None => Err(PoolError::Empty {
                dir: dir.to_owned(),
                skipped: skipped.len(),
            }),
        }
    }

    /// [`ImagePool::load_blocking`] on the blocking thread pool.
    pub async fn load(
        dir: PathBuf,
        resize: Option<u32>,
    ) -> Result<(Self, Vec<SkippedImage>), PoolError> {
        match tokio::task::spawn_blocking(move || Self::load_blocking(&dir, resize)).await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Always false: a pool holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn images(&self) -> &[PoolImage] {
        &self.images
    }

    /// The image request `seq` sends.
    pub fn for_request(&self, seq: u64) -> &PoolImage {
        &self.images[(seq % self.images.len() as u64) as usize]
    }
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn load_one(path: &Path, resize: Option<u32>) -> Result<PoolImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reader = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    let (bytes, width, height) = match resize {
        None => {
            // Only the header: enough to reject files that are not images without paying for
            // a full decode of every original.
            let (w, h) = reader
                .into_dimensions()
                .map_err(|e| format!("not a decodable image: {e}"))?;
            (bytes, w, h)
        }
        Some(n) => {
            let decoded = reader
                .decode()
                .map_err(|e| format!("not a decodable image: {e}"))?;
            let resized = decoded.resize_exact(n, n, FilterType::Triangle).into_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                .encode_image(&resized)
                .map_err(|e| format!("cannot re-encode as JPEG: {e}"))?;
            (out, n, n)
        }
    };
    Ok(PoolImage {
        name,
        base64: harness_core::image_payload::encode(&bytes),
        width,
        height,
        bytes: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32) {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn loads_images_in_name_order_and_skips_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("b.PNG"), 4, 3);
        write_png(&dir.path().join("a.png"), 2, 2);
        std::fs::write(dir.path().join("broken.jpg"), b"not a jpeg").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let (pool, skipped) = ImagePool::load_blocking(dir.path(), None).unwrap();
        let names: Vec<&str> = pool.images().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a.png", "b.PNG"]);
        assert_eq!((pool.images()[1].width, pool.images()[1].height), (4, 3));
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].path.ends_with("broken.jpg"));
        // Cycling through the pool.
        assert_eq!(pool.for_request(0).name, "a.png");
        assert_eq!(pool.for_request(3).name, "b.PNG");
        // What is sent decodes back to the file.
        let original = std::fs::read(dir.path().join("a.png")).unwrap();
        let sent = harness_core::image_payload::decode(&pool.images()[0].base64).unwrap();
        assert_eq!(sent, original);
    }

    #[test]
    fn resize_reencodes_as_square_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("a.png"), 40, 20);
        let (pool, _) = ImagePool::load_blocking(dir.path(), Some(16)).unwrap();
        let bytes = harness_core::image_payload::decode(&pool.images()[0].base64).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (16, 16));
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
    }

    #[test]
    fn empty_or_missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.png"), b"garbage").unwrap();
        let err = ImagePool::load_blocking(dir.path(), None).unwrap_err();
        assert!(matches!(err, PoolError::Empty { skipped: 1, .. }), "{err}");
        let err = ImagePool::load_blocking(&dir.path().join("nope"), None).unwrap_err();
        assert!(matches!(err, PoolError::Dir { .. }));
        assert!(matches!(
            ImagePool::load_blocking(dir.path(), Some(0)),
            Err(PoolError::BadResize(0))
        ));
    }

    #[test]
    fn the_repository_photos_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images");
        let (pool, skipped) = ImagePool::load_blocking(&dir, None).unwrap();
        assert!(pool.len() >= 9 && skipped.is_empty(), "{skipped:?}");
    }
}
