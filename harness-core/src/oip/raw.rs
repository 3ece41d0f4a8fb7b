//! The raw form of tensor data, what the binary extension carries: little-endian elements of
//! the datatype's width, and BYTES as a 4-byte little-endian length then the bytes, per element.

use super::CodecError;
use super::tensor::{Datatype, Tensor, TensorData};

impl Tensor {
    /// The raw form of the data (what goes in the binary section).
    pub fn to_raw(&self) -> Result<Vec<u8>, CodecError> {
        let unsupported = || CodecError::Unsupported {
            tensor: self.name.clone(),
            datatype: self.datatype,
        };
        let data = self.data.as_ref().ok_or_else(unsupported)?;
        let value = || CodecError::Value {
            tensor: self.name.clone(),
            datatype: self.datatype,
        };
        let mut out = Vec::new();
        match (self.datatype, data) {
            (Datatype::Bytes, TensorData::Bytes(v)) => {
                return encode_bytes_elements(v).ok_or_else(value);
            }
            (Datatype::Bool, TensorData::Bool(v)) => out.extend(v.iter().map(|&b| u8::from(b))),
            (d, TensorData::Uint(v)) => {
                let size = d.element_size().ok_or_else(value)?;
                for &x in v {
                    if size < 8 && x >> (size * 8) != 0 {
                        return Err(value());
                    }
                    out.extend_from_slice(&x.to_le_bytes()[..size]);
                }
            }
            (d, TensorData::Int(v)) => {
                let size = d.element_size().ok_or_else(value)?;
                for &x in v {
                    let bits = 64 - size as u32 * 8;
                    if (x << bits) >> bits != x {
                        return Err(value());
                    }
                    out.extend_from_slice(&x.to_le_bytes()[..size]);
                }
            }
            (Datatype::Fp32, TensorData::Float(v)) => v
                .iter()
                .for_each(|&x| out.extend_from_slice(&(x as f32).to_le_bytes())),
            (Datatype::Fp64, TensorData::Float(v)) => v
                .iter()
                .for_each(|&x| out.extend_from_slice(&x.to_le_bytes())),
            (Datatype::Fp16 | Datatype::Bf16, TensorData::Float(_)) => return Err(unsupported()),
            _ => return Err(value()),
        }
        Ok(out)
    }

    /// Fills the data from its raw form; the element count must match the shape.
    pub fn set_raw(&mut self, raw: &[u8]) -> Result<(), CodecError> {
        let expected = self.element_count()?;
        let data = match self.datatype.element_size() {
            None => TensorData::Bytes(decode_bytes_elements(raw, &self.name)?),
            Some(size) => {
                if !raw.len().is_multiple_of(size) {
                    return Err(CodecError::ElementCount {
                        tensor: self.name.clone(),
                        expected,
                        actual: (raw.len() / size) as u64,
                    });
                }
                fixed_from_raw(self.datatype, raw, size)
            }
        };
        self.check_count(data.len() as u64)?;
        self.data = Some(data);
        Ok(())
    }
}

fn fixed_from_raw(datatype: Datatype, raw: &[u8], size: usize) -> TensorData {
    let words = raw.chunks_exact(size).map(|c| {
        let mut w = [0u8; 8];
        w[..size].copy_from_slice(c);
        u64::from_le_bytes(w)
    });
    let shift = 64 - size as u32 * 8;
    match datatype {
        Datatype::Bool => TensorData::Bool(words.map(|w| w != 0).collect()),
        Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64 => {
            TensorData::Uint(words.collect())
        }
        Datatype::Fp16 => TensorData::Float(words.map(|w| f16_to_f64(w as u16)).collect()),
        Datatype::Bf16 => TensorData::Float(
            words
                .map(|w| f32::from_bits((w as u32) << 16).into())
                .collect(),
        ),
        Datatype::Fp32 => {
            TensorData::Float(words.map(|w| f32::from_bits(w as u32).into()).collect())
        }
        Datatype::Fp64 => TensorData::Float(words.map(f64::from_bits).collect()),
        // Sign-extend from the element's width.
        _ => TensorData::Int(words.map(|w| ((w << shift) as i64) >> shift).collect()),
    }
}

/// IEEE 754 half precision to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    match exp {
        0 => sign * mant * 2f64.powi(-24),
        0x1f if mant == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    }
}

/// BYTES elements in raw form: each a 4-byte little-endian length, then the bytes. `None` when
/// an element is longer than a 4-byte length can say.
pub fn encode_bytes_elements(elements: &[Vec<u8>]) -> Option<Vec<u8>> {
    let total = elements.iter().map(|e| e.len() + 4).sum();
    let mut out = Vec::with_capacity(total);
    for e in elements {
        out.extend_from_slice(&u32::try_from(e.len()).ok()?.to_le_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

/// Splits raw BYTES data into its elements; every length is checked against what is left, so a
/// lying length is an error, never an allocation.
pub fn decode_bytes_elements(mut raw: &[u8], tensor: &str) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut elements = Vec::new();
    while !raw.is_empty() {
        let out_of_bounds = || CodecError::BytesElement {
            tensor: tensor.to_owned(),
            index: elements.len() as u64,
        };
        let (len, rest) = raw.split_first_chunk::<4>().ok_or_else(out_of_bounds)?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(out_of_bounds());
        }
        let (element, rest) = rest.split_at(len);
        elements.push(element.to_vec());
        raw = rest;
    }
    Ok(elements)
}
