//! The raster clipper: masks every pixel of a tile or map image that lies outside
//! a token's geofence.
//!
//! Used only for answers that partly overlap the fence (the policy's
//! [`Clip`](crate::policy::Clip) obligation); wholly inside answers are relayed
//! byte for byte and never reach this module. [`clip_image`] decodes the image,
//! asks [`PixelMask`] which pixels lie inside (a pixel is inside when its centre
//! is), and encodes it again:
//!
//! - **PNG** becomes RGBA (an indexed, grey or opaque PNG gains an alpha channel;
//!   16-bit stays 16-bit): outside pixels are `0,0,0,0` (every channel zeroed, so
//!   nothing hides under the transparency), inside pixels keep their exact values.
//! - **WebP** becomes lossless RGBA WebP, masked the same way.
//! - **JPEG** has no transparency: outside pixels take the background colour (the
//!   path's `background`, or the request's WMS `BGCOLOR`), and the image is
//!   encoded again at quality 90 (inside pixels change by the JPEG round trip).
//!
//! The format is read from the image's own magic bytes, not from a header; any
//! other format, a corrupt image, or one larger than the path's `max_image_size`
//! on a side is a [`FilterError`] (the gateway answers 502): an image the gateway
//! cannot mask is never passed on. Pure code: bytes in, bytes out, no I/O.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder, ImageFormat, ImageReader, Limits};

use super::FilterError;
use crate::policy::Clip;
use crate::spatial::{Fence, PixelMask};

/// The JPEG quality of clipped JPEG answers.
pub const JPEG_QUALITY: u8 = 90;

/// A clipped image and the media type it is now encoded in.
#[derive(Debug)]
pub struct Clipped {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Parses `#rrggbb` (case-insensitive) into a colour.
///
/// ```
/// use tilegate::filter::raster::parse_colour;
/// assert_eq!(parse_colour("#ff8000"), Some([255, 128, 0]));
/// assert_eq!(parse_colour("#FFF"), None);
/// assert_eq!(parse_colour("ff8000"), None);
/// ```
pub fn parse_colour(text: &str) -> Option<[u8; 3]> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The image formats the clipper reads, from their magic bytes.
fn sniff(data: &[u8]) -> Option<ImageFormat> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// Masks the pixels of `data` outside `fence` over the clip's area. `max_side` bounds
/// the decoded width and height (and so the memory a hostile image can make the
/// gateway allocate).
///
/// ```
/// use image::{ImageFormat, Rgba, RgbaImage};
/// use tilegate::filter::raster::clip_image;
/// use tilegate::policy::{Clip, ClipArea};
/// use tilegate::spatial::{Fence, TileCoord};
///
/// let mut png = Vec::new();
/// RgbaImage::from_pixel(256, 256, Rgba([10, 20, 30, 255]))
///     .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
///     .unwrap();
/// // The fence is the north-west quarter of tile 1/0/0.
/// let fence = Fence::new(Some(&[(2, 0, 0)]), None).unwrap();
/// let clip = Clip { area: ClipArea::Tile(TileCoord::new(1, 0, 0).unwrap()), background: [255; 3], vector: false };
/// let out = clip_image(&png, &fence, &clip, 4096).unwrap();
/// assert_eq!(out.content_type, "image/png");
/// let img = image::load_from_memory(&out.body).unwrap().to_rgba8();
/// assert_eq!(img.get_pixel(127, 127), &Rgba([10, 20, 30, 255]));
/// assert_eq!(img.get_pixel(128, 127), &Rgba([0, 0, 0, 0]));
/// ```
pub fn clip_image(data: &[u8], fence: &Fence, clip: &Clip, max_side: u32) -> Result<Clipped, FilterError> {
    let format = sniff(data).ok_or_else(|| {
        FilterError::Image("not a PNG, JPEG or WebP image (the only formats the gateway can clip)".into())
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    // RGBA 16-bit of the largest allowed image, and the decoder's own buffers.
    limits.max_alloc = Some(u64::from(max_side) * u64::from(max_side) * 8 + (64 << 20));
    reader.limits(limits);
    let image = reader.decode().map_err(|e| FilterError::Image(format!("{format:?}: {e}")))?;
    let (width, height) = (image.width(), image.height());
    let mask = PixelMask::new(fence, &clip.area, width, height)
        .ok_or_else(|| FilterError::Image("the fence has no tiles to clip to".into()))?;
    match format {
        ImageFormat::Jpeg => {
            let mut rgb = image.into_rgb8();
            for_outside(&mask, |x, y| rgb.put_pixel(x, y, image::Rgb(clip.background)));
            let mut out = Vec::new();
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                .write_image(rgb.as_raw(), width, height, image::ExtendedColorType::Rgb8)
                .map_err(|e| FilterError::Image(format!("encoding JPEG: {e}")))?;
            Ok(Clipped { body: out, content_type: "image/jpeg" })
        }
        ImageFormat::WebP => {
            let mut rgba = image.into_rgba8();
            for_outside(&mask, |x, y| rgba.put_pixel(x, y, image::Rgba([0; 4])));
            let mut out = Vec::new();
            WebPEncoder::new_lossless(&mut out)
                .write_image(rgba.as_raw(), width, height, image::ExtendedColorType::Rgba8)
                .map_err(|e| FilterError::Image(format!("encoding WebP: {e}")))?;
            Ok(Clipped { body: out, content_type: "image/webp" })
        }
        _ => {
            let mut out = Vec::new();
            let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
            let result = match image {
                DynamicImage::ImageLuma16(_)
                | DynamicImage::ImageLumaA16(_)
                | DynamicImage::ImageRgb16(_)
                | DynamicImage::ImageRgba16(_) => {
                    let mut rgba = image.into_rgba16();
                    for_outside(&mask, |x, y| rgba.put_pixel(x, y, image::Rgba([0; 4])));
                    let bytes: Vec<u8> = rgba.as_raw().iter().flat_map(|v| v.to_be_bytes()).collect();
                    encoder.write_image(&bytes, width, height, image::ExtendedColorType::Rgba16)
                }
                other => {
                    let mut rgba = other.into_rgba8();
                    for_outside(&mask, |x, y| rgba.put_pixel(x, y, image::Rgba([0; 4])));
                    encoder.write_image(rgba.as_raw(), width, height, image::ExtendedColorType::Rgba8)
                }
            };
            result.map_err(|e| FilterError::Image(format!("encoding PNG: {e}")))?;
            Ok(Clipped { body: out, content_type: "image/png" })
        }
    }
}

/// Calls `f` for every pixel outside the mask.
fn for_outside(mask: &PixelMask, mut f: impl FnMut(u32, u32)) {
    for y in 0..mask.height() {
        let mut x = 0;
        for &(start, end) in mask.row(y) {
            (x..start).for_each(|x| f(x, y));
            x = end;
        }
        (x..mask.width()).for_each(|x| f(x, y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ClipArea;
    use crate::spatial::{BBox, Crs, TileCoord};
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    fn tile_clip(z: u32, x: u64, y: u64) -> Clip {
        Clip { area: ClipArea::Tile(TileCoord::new(z, x, y).unwrap()), background: [255, 255, 255], vector: false }
    }

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    /// A 256×256 image whose every pixel differs from its neighbours.
    fn gradient() -> RgbaImage {
        RgbaImage::from_fn(256, 256, |x, y| Rgba([x as u8, y as u8, (x ^ y) as u8, 200]))
    }

    /// Fence 3/2/2 in tile 2/1/1: the tile's north-west quarter.
    fn quarter() -> Fence {
        Fence::new(Some(&[(3, 2, 2)]), None).unwrap()
    }

    #[test]
    fn png_outside_is_transparent_and_inside_is_untouched() {
        let src = gradient();
        let png = encode(&DynamicImage::ImageRgba8(src.clone()), ImageFormat::Png);
        let out = clip_image(&png, &quarter(), &tile_clip(2, 1, 1), 4096).unwrap();
        let img = image::load_from_memory(&out.body).unwrap().to_rgba8();
        for (x, y, p) in img.enumerate_pixels() {
            if x < 128 && y < 128 {
                assert_eq!(p, src.get_pixel(x, y), "inside {x},{y}");
            } else {
                assert_eq!(p, &Rgba([0, 0, 0, 0]), "outside {x},{y}");
            }
        }
    }

    #[test]
    fn an_opaque_or_grey_png_gains_an_alpha_channel() {
        let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(64, 64, Luma([77])));
        let out = clip_image(&encode(&grey, ImageFormat::Png), &quarter(), &tile_clip(2, 1, 1), 4096).unwrap();
        let img = image::load_from_memory(&out.body).unwrap();
        assert!(img.color().has_alpha());
        let img = img.to_rgba8();
        assert_eq!(img.get_pixel(0, 0), &Rgba([77, 77, 77, 255]));
        assert_eq!(img.get_pixel(32, 0), &Rgba([0, 0, 0, 0]));
    }

    #[test]
    fn jpeg_outside_gets_the_background() {
        let src = DynamicImage::ImageRgb8(RgbImage::from_pixel(256, 256, Rgb([20, 120, 40])));
        let clip = Clip { background: [250, 10, 10], ..tile_clip(2, 1, 1) };
        let out = clip_image(&encode(&src, ImageFormat::Jpeg), &quarter(), &clip, 4096).unwrap();
        assert_eq!(out.content_type, "image/jpeg");
        let img = image::load_from_memory(&out.body).unwrap().to_rgb8();
        let near = |a: &Rgb<u8>, b: [u8; 3]| a.0.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6);
        assert!(near(img.get_pixel(40, 40), [20, 120, 40]));
        assert!(near(img.get_pixel(200, 200), [250, 10, 10]));
    }

    #[test]
    fn webp_is_masked_losslessly() {
        let src = gradient();
        let webp = encode(&DynamicImage::ImageRgba8(src.clone()), ImageFormat::WebP);
        let out = clip_image(&webp, &quarter(), &tile_clip(2, 1, 1), 4096).unwrap();
        assert_eq!(out.content_type, "image/webp");
        let img = image::load_from_memory(&out.body).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(5, 6), src.get_pixel(5, 6));
        assert_eq!(img.get_pixel(130, 6), &Rgba([0; 4]));
    }

    #[test]
    fn a_wms_map_in_degrees_is_masked_by_latitude_rows() {
        // Fence 1/1/0: 0..180°E, 0..85°N. A map from 10°W to 10°E, 10°S to 10°N.
        let fence = Fence::new(Some(&[(1, 1, 0)]), None).unwrap();
        let bbox = BBox { crs: Crs::Wgs84, min_x: -10.0, min_y: -10.0, max_x: 10.0, max_y: 10.0 };
        let clip = Clip { area: ClipArea::BBox(bbox), background: [0; 3], vector: false };
        let png =
            encode(&DynamicImage::ImageRgba8(RgbaImage::from_pixel(20, 20, Rgba([9, 9, 9, 255]))), ImageFormat::Png);
        let img = image::load_from_memory(&clip_image(&png, &fence, &clip, 4096).unwrap().body).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(10, 9), &Rgba([9, 9, 9, 255]));
        assert_eq!(img.get_pixel(9, 9)[3], 0);
        assert_eq!(img.get_pixel(10, 10)[3], 0);
    }

    #[test]
    fn what_cannot_be_decoded_is_refused() {
        let fence = quarter();
        let clip = tile_clip(2, 1, 1);
        for body in
            [&b""[..], b"GIF89a....", b"<ServiceExceptionReport/>", b"\x89PNG\r\n\x1a\ntruncated", b"\xFF\xD8\xFFnot"]
        {
            let err = clip_image(body, &fence, &clip, 4096).unwrap_err();
            assert!(matches!(err, FilterError::Image(_)), "{err}");
        }
        let mut png = encode(&DynamicImage::ImageRgba8(gradient()), ImageFormat::Png);
        png.truncate(png.len() / 2);
        assert!(clip_image(&png, &fence, &clip, 4096).is_err());
    }

    #[test]
    fn an_image_larger_than_max_image_size_is_refused() {
        let png = encode(&DynamicImage::ImageRgba8(gradient()), ImageFormat::Png);
        assert!(matches!(clip_image(&png, &quarter(), &tile_clip(2, 1, 1), 255), Err(FilterError::Image(_))));
    }

    #[test]
    fn colours_parse_strictly() {
        assert_eq!(parse_colour("#000000"), Some([0, 0, 0]));
        for bad in ["", "#", "#12345", "#1234567", "#gg0000", "white", "0xffffff"] {
            assert_eq!(parse_colour(bad), None, "{bad}");
        }
    }
}
