//! QR codes as inline SVG, for the invitation web (an invite link to scan with a phone).
//!
//! Pure: text in, markup out. The SVG has no XML declaration (it goes inside an HTML page), a
//! quiet zone of four modules, a fixed size per module and a `<title>` for assistive technology.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::{Error, Result};

/// Longest text encoded (an invite link is about 100 bytes; a QR code holds up to 2 953).
pub const MAX_LEN: usize = 1024;

/// Pixels per module, so the code scans at its rendered size.
const MODULE_PX: u32 = 4;

/// The QR code of `text` as an `<svg>` element labelled `title` (escaped here), or a
/// `BadRequest` when the text is empty or too long.
pub fn svg(text: &str, title: &str) -> Result<String> {
    if text.is_empty() || text.len() > MAX_LEN {
        return Err(Error::BadRequest(format!("QR code text must be 1 to {MAX_LEN} bytes")));
    }
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| Error::BadRequest(format!("cannot encode as a QR code: {e}")))?;
    let image = code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(MODULE_PX, MODULE_PX)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Drop the XML declaration; label the image.
    let start = image.find("<svg").unwrap_or(0);
    let body = &image[start..];
    let open_end = body.find('>').map_or(0, |i| i + 1);
    let (open, rest) = body.split_at(open_end);
    let open = open.replacen("<svg ", "<svg role=\"img\" class=\"qr\" ", 1);
    Ok(format!("{open}<title>{}</title>{rest}", escape(title)))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_inline_svg_with_a_title() {
        let out = svg("https://example.com/invite/abc", "Scan <me>").unwrap();
        assert!(out.starts_with("<svg role=\"img\" class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\""), "{out}");
        assert!(out.contains("<title>Scan &lt;me&gt;</title>"), "{out}");
        assert!(out.ends_with("</svg>"));
        assert!(!out.contains("<?xml"));
        // version 3 at level M for 30 bytes: 29 modules + 8 quiet = 37 modules of 4 px
        assert!(out.contains("width=\"148\""), "{out}");
    }

    #[test]
    fn refuses_empty_and_oversized_text() {
        assert!(matches!(svg("", "t"), Err(Error::BadRequest(_))));
        assert!(matches!(svg(&"a".repeat(MAX_LEN + 1), "t"), Err(Error::BadRequest(_))));
        assert!(svg(&"a".repeat(MAX_LEN), "t").is_ok());
    }

    #[test]
    fn same_text_same_code() {
        assert_eq!(svg("xmpp:a@b", "x").unwrap(), svg("xmpp:a@b", "x").unwrap());
        assert_ne!(svg("xmpp:a@b", "x").unwrap(), svg("xmpp:a@c", "x").unwrap());
    }
}
