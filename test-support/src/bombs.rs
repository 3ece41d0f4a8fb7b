//! Decompression bombs, built in code: small files whose headers declare billions of pixels.
//! Shared by the inference service's tests and the pipeline's hostile-input corpus, so both
//! send the same bombs.

/// CRC-32 (IEEE), as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).expect("chunk under 4 GB");
    out.extend_from_slice(&length.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn png_with(width: u32, height: u32, bit_depth: u8, colour_type: u8, idat: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[bit_depth, colour_type, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", idat);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A PNG of a few dozen bytes whose header declares `side`×`side` 8-bit RGB pixels, followed
/// by the start of a zlib stream: decoding would allocate `3 × side²` bytes before noticing
/// that the data runs out.
pub fn png_header_bomb(side: u32) -> Vec<u8> {
    png_with(
        side,
        side,
        8,
        2,
        &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00],
    )
}

/// A complete, valid PNG: `side`×`side` 1-bit grayscale, all black, every scanline present in
/// a real zlib stream (about 700 KB at 30000×30000). The decoders would expand it to one byte
/// per pixel or more: 900 MB as gray, 2.7 GB as RGB.
pub fn png_deflate_bomb(side: u32) -> Vec<u8> {
    let row_bytes = 1 + side.div_ceil(8) as usize; // filter byte + packed bits
    png_with(side, side, 1, 0, &zlib_zeros(row_bytes * side as usize))
}

/// A zlib stream of `n` zero bytes, with fixed Huffman codes: a literal 0, then back
/// references of length 258 at distance 1 (13 bits for 258 bytes), then literals.
fn zlib_zeros(n: usize) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = fixed Huffman
    let literal_zero = |bits: &mut BitWriter| bits.put_code(0x30, 8);
    literal_zero(&mut bits);
    let rest = n - 1;
    for _ in 0..rest / 258 {
        bits.put_code(0xC5, 8); // length symbol 285 = 258
        bits.put_code(0, 5); // distance symbol 0 = 1
    }
    for _ in 0..rest % 258 {
        literal_zero(&mut bits);
    }
    bits.put_code(0, 7); // end of block (256)
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    // Adler-32 of zeros: a stays 1, b grows by 1 per byte.
    let b = (n % 65_521) as u32;
    out.extend_from_slice(&((b << 16) | 1).to_be_bytes());
    out
}

/// Deflate's bit order: values least significant bit first, Huffman codes most significant
/// bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.filled;
        self.filled += count;
        while self.filled >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    fn put_code(&mut self, code: u32, length: u32) {
        let reversed = code.reverse_bits() >> (32 - length);
        self.put(reversed, length);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// `jpeg`, a real JPEG, with its frame header rewritten to declare `side`×`side` pixels.
pub fn jpeg_bomb(mut jpeg: Vec<u8>, side: u16) -> Vec<u8> {
    let sof = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && (0xC0..=0xC2).contains(&w[1]))
        .expect("a frame header");
    // FFCx, length (2), precision (1), height (2), width (2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    jpeg
}

/// A GIF whose logical screen is `side`×`side` (its one frame is 4×4).
pub fn gif_bomb(side: u16) -> Vec<u8> {
    let frame = image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255]));
    let mut gif = Vec::new();
    frame
        .write_to(&mut std::io::Cursor::new(&mut gif), image::ImageFormat::Gif)
        .expect("a 4x4 GIF encodes");
    gif[6..8].copy_from_slice(&side.to_le_bytes());
    gif[8..10].copy_from_slice(&side.to_le_bytes());
    gif
}
