//! Images the tray sends over D-Bus: a qube's icon (its kind in its label's colour, drawn from
//! the same SVG shapes as the Qube Manager's, [`crate::qube_icons`]) as a small PNG for menu
//! rows (dbusmenu takes PNG bytes) and the tray icon as ARGB32 pixmaps (StatusNotifierItem
//! takes raw pixels), so rows show what kind of qube they are and its label's colour, and the
//! item has an icon even without the Qubes icon theme.

use crate::qube_icons::{QubeKind, palette, rasterise};

pub use crate::qube_icons::parse_colour;

/// Side of a qube icon in menu rows, in pixels.
const ICON: u32 = 16;

/// A PNG of the icon of `kind` in the label colour `rgb` (with a darker outline and a white
/// glyph, visible on light and dark menus). Two bits per pixel over a four-colour palette: a
/// menu of a thousand qubes carries a thousand of these, so they stay under 200 bytes.
pub fn qube_png(kind: QubeKind, rgb: [u8; 3]) -> Vec<u8> {
    let pixels = rasterise(kind, ICON);
    let mut rows = Vec::with_capacity(((ICON / 4 + 1) * ICON) as usize);
    for y in 0..ICON {
        rows.push(0); // filter: none
        for x4 in 0..ICON / 4 {
            let at = (y * ICON + x4 * 4) as usize;
            let byte = pixels[at..at + 4]
                .iter()
                .fold(0u8, |acc, p| (acc << 2) | (p & 3));
            rows.push(byte);
        }
    }
    let [outline, fill, glyph] = palette(rgb);
    let mut colours = vec![0, 0, 0];
    for c in [outline, fill, glyph] {
        colours.extend_from_slice(&c);
    }
    png_indexed(ICON, ICON, &colours, &[0], &rows)
}

/// The tray icon at `size` pixels: a blue rounded tile with a white cube outline. ARGB32 in
/// network byte order, as StatusNotifierItem's `IconPixmap` wants.
pub fn tray_pixmap(size: i32) -> ksni::Icon {
    let side = size.max(8);
    let n = side.unsigned_abs();
    let mut data = Vec::with_capacity((n * n * 4) as usize);
    let m = n / 8; // margin of the inner outline
    for y in 0..n {
        for x in 0..n {
            let corner = (x < 2 || x >= n - 2) && (y < 2 || y >= n - 2);
            let outline = (x >= m && x < n - m && y >= m && y < n - m)
                && (x < m + 2 || x >= n - m - 2 || y < m + 2 || y >= n - m - 2);
            let inner = x >= 3 * m && x < n - 3 * m && y >= 3 * m && y < n - 3 * m;
            let px: [u8; 4] = if corner {
                [0, 0, 0, 0]
            } else if outline || inner {
                [0xff, 0xff, 0xff, 0xff]
            } else {
                [0xff, 0x38, 0x74, 0xd8]
            };
            data.extend_from_slice(&px);
        }
    }
    ksni::Icon {
        width: side,
        height: side,
        data,
    }
}

/// A 2-bit indexed PNG of already filtered scanlines, compressed with one stored deflate
/// block: tiny images only, so there is no need for a compressor.
fn png_indexed(width: u32, height: u32, palette: &[u8], alpha: &[u8], filtered: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[2, 3, 0, 0, 0]); // 2 bits, indexed, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", palette);
    chunk(&mut out, b"tRNS", alpha);
    debug_assert!(filtered.len() <= 0xffff);
    let len = filtered.len() as u16;
    let mut z = vec![0x78, 0x01, 1]; // zlib header; final stored block
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(filtered);
    z.extend_from_slice(&adler32(filtered).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_strictly() {
        assert_eq!(parse_colour("0xcc0000"), Some([0xcc, 0, 0]));
        assert_eq!(parse_colour("0x73d216"), Some([0x73, 0xd2, 0x16]));
        for bad in ["cc0000", "0xcc00", "0x+c0000", "0xgg0000", "0xcc00000"] {
            assert_eq!(parse_colour(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn qube_icon_is_a_small_png_with_the_colour_in_its_palette() {
        let png = qube_png(QubeKind::Standalone, [0x12, 0x34, 0x56]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..26], &[0, 0, 0, 16, 0, 0, 0, 16, 2, 3]);
        let plte = png.windows(4).position(|w| w == b"PLTE").unwrap();
        assert_eq!(&png[plte - 4..plte], &[0, 0, 0, 12]);
        // transparent, outline (darker), fill (the label's colour), glyph (white)
        assert_eq!(
            &png[plte + 4..plte + 16],
            &[
                0, 0, 0, 0x0a, 0x1f, 0x33, 0x12, 0x34, 0x56, 0xff, 0xff, 0xff
            ]
        );
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        assert!(png.len() < 200, "{} bytes", png.len());
        // Row 8 of the standalone qube: a transparent edge pixel, the outline, the label's
        // colour, the white square in the middle, and back (indices 0 to 3, two bits each).
        let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
        let row8 = idat + 4 + 7 + 8 * 5;
        assert_eq!(
            &png[row8..row8 + 5],
            &[0, 0b0001_1010, 0xff, 0xff, 0b1010_0100]
        );
        // Every kind fits in the same small size.
        for kind in QubeKind::ALL {
            assert!(qube_png(kind, [0xcc, 0, 0]).len() < 200, "{kind:?}");
        }
    }

    #[test]
    fn tray_icon_has_every_pixel() {
        let icon = tray_pixmap(22);
        assert_eq!(
            (icon.width, icon.height, icon.data.len()),
            (22, 22, 22 * 22 * 4)
        );
        assert_eq!(&icon.data[..4], &[0, 0, 0, 0]); // transparent corner
    }
}
