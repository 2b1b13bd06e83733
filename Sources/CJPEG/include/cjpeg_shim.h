#ifndef LOUPE_CJPEG_SHIM_H
#define LOUPE_CJPEG_SHIM_H
#include <stddef.h>

/// Decodes the baseline or progressive JPEG at `path` into 8-bit pixels, rows top to bottom,
/// channels interleaved: 1 for grayscale files, 3 (RGB) for YCbCr and RGB files. CMYK and YCCK
/// files are refused. Every libjpeg error and every libjpeg warning (a truncated file, corrupt
/// entropy data) ends the decode: libjpeg would otherwise fill the missing part with gray.
///
/// Returns 0 and a `malloc`ed buffer in `*pixels` (release it with `loupe_jpeg_free`), or -1 and a
/// NUL-terminated one-line reason in `errbuf` (at most `errlen` bytes) with `*pixels` NULL.
/// The corresponding libjpeg functions are `jpeg_read_header`, `jpeg_start_decompress` and
/// `jpeg_read_scanlines`.
int loupe_jpeg_decode(const char *path, int *width, int *height, int *channels,
                      unsigned char **pixels, char *errbuf, size_t errlen);

/// Releases a buffer returned by `loupe_jpeg_decode`.
void loupe_jpeg_free(unsigned char *pixels);

#endif
