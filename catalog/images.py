"""Product images: checked with Pillow, re-encoded (which drops EXIF and anything hidden after
the image data), and thumbnailed. Uploads are untrusted: a file that is not an image, is
truncated, is too large, or would decompress into a huge bitmap is refused with a clear message."""

import io
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
# 40 megapixels: more than any product photo needs, far below what exhausts a worker's memory.
MAX_PIXELS = 40_000_000
THUMBNAIL_SIZE = (400, 400)


@dataclass(frozen=True)
class ProcessedImage:
    image: ContentFile
    thumbnail: ContentFile
    width: int
    height: int
    extension: str


def _read_upload(upload) -> bytes:
    max_bytes = settings.PRODUCT_IMAGE_MAX_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise ValidationError(_("图片太大：最大 %(max)s MB") % {"max": round(max_bytes / 1024 / 1024, 1)})
    if hasattr(upload, "seek"):
        upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValidationError(_("图片太大：最大 %(max)s MB") % {"max": round(max_bytes / 1024 / 1024, 1)})
    if not data:
        raise ValidationError(_("图片文件是空的"))
    return data


def _open_checked(data: bytes) -> Image.Image:
    """Verify the file, then reopen it (verify() leaves the image unusable) and decode it fully,
    so a truncated file fails here and not later in a thumbnail."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            if image_format not in ALLOWED_FORMATS:
                raise ValidationError(
                    _("不支持的图片格式 %(format)s：只接受 JPEG、PNG、WebP、GIF") % {"format": image_format or "?"}
                )
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ValidationError(
                    _("图片尺寸过大（%(width)s×%(height)s 像素）") % {"width": width, "height": height}
                )
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        raise ValidationError(_("图片尺寸过大，疑似解压炸弹")) from None
    except UnidentifiedImageError:
        raise ValidationError(_("上传的文件不是图片")) from None
    except (OSError, SyntaxError, ValueError):
        raise ValidationError(_("图片文件已损坏或不完整")) from None
    return image


def _encode(image: Image.Image, image_format: str) -> bytes:
    out = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif image_format == "WEBP":
        image.save(out, "WEBP", quality=88)
    elif image_format == "GIF":
        image.save(out, "GIF")
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def process_product_image(upload) -> ProcessedImage:
    """A clean copy of the upload and its thumbnail, or a ValidationError saying what is wrong."""
    data = _read_upload(upload)
    image = _open_checked(data)
    image_format = image.format
    # Apply the EXIF orientation before EXIF is dropped, so photos stay upright.
    upright = ImageOps.exif_transpose(image) if image_format in {"JPEG", "WEBP"} else image
    if upright.mode not in {"RGB", "RGBA", "L", "LA", "P"}:
        upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
    # A fresh image holds pixels only: no EXIF, no comments, no trailing data.
    clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
    if upright.mode == "P":
        clean.putpalette(upright.getpalette())
    thumbnail = clean.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    extension = ALLOWED_FORMATS[image_format]
    return ProcessedImage(
        image=ContentFile(_encode(clean, image_format)),
        thumbnail=ContentFile(_encode(thumbnail, image_format)),
        width=clean.width,
        height=clean.height,
        extension=extension,
    )
