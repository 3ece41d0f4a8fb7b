//! The look every PNG of the project shares: an embedded font, so that rendering never depends
//! on the fonts installed (DejaVu Sans, see `assets/DejaVuSans-LICENSE.txt`), one colour-blind-safe
//! palette (Okabe–Ito) and the small axis helpers both the load tester's report and the
//! autoscaler's simulation plot use.

use std::sync::OnceLock;

use plotters::element::PathElement;
use plotters::style::{Color, FontStyle, RGBColor, register_font};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family every label is drawn in.
pub const FAMILY: &str = "sans-serif";

pub const BLUE: RGBColor = RGBColor(0, 114, 178);
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
pub const VERMILION: RGBColor = RGBColor(213, 94, 0);
pub const GREEN: RGBColor = RGBColor(0, 158, 115);
pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
pub const SKY: RGBColor = RGBColor(86, 180, 233);
pub const YELLOW: RGBColor = RGBColor(240, 228, 66);
/// For reference lines such as the offered load.
pub const GREY: RGBColor = RGBColor(150, 150, 150);
/// Text and axes.
pub const INK: RGBColor = RGBColor(40, 40, 40);

/// The series colours in order, for plots with one line per thing (policies, say).
pub const PALETTE: [RGBColor; 7] = [BLUE, VERMILION, GREEN, PURPLE, ORANGE, SKY, YELLOW];

/// The embedded font was refused by the rasteriser.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the embedded font is not a valid TrueType font")]
pub struct FontError;

/// Registers the embedded font under [`FAMILY`], once per process.
pub fn register() -> Result<(), FontError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(FontError) }
}

/// Upper end of an axis: a little headroom above the data, never an empty range.
pub fn headroom(max: f64) -> f64 {
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// Tick labels without a pointless `.0` once the axis spans enough units.
pub fn ticks(span: f64) -> impl Fn(&f64) -> String {
    move |v: &f64| {
        if span >= 8.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    }
}

/// A legend's sample of a line series in `color`.
pub fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_registers_and_axes_get_headroom() {
        register().unwrap();
        register().unwrap();
        assert_eq!(headroom(0.0), 1.0);
        assert!((headroom(10.0) - 11.0).abs() < 1e-9);
        assert_eq!(ticks(10.0)(&2.0), "2");
        assert_eq!(ticks(1.0)(&0.3), "0.3");
    }
}
