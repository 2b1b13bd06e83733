#include "cjpeg_shim.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

// libjpeg's default error handler prints and calls exit(). Ours formats the message and longjmps
// back to the decode, which is the only way out of `error_exit` that libjpeg allows.
struct loupe_error_manager {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
};

static void loupe_error_exit(j_common_ptr cinfo) {
    struct loupe_error_manager *err = (struct loupe_error_manager *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->escape, 1);
}

// Level -1 is a warning about corrupt data (libjpeg then decodes the rest as gray); levels 0 and
// up are trace messages, which are ignored.
static void loupe_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0) loupe_error_exit(cinfo);
}

static int fail(char *errbuf, size_t errlen, const char *message) {
    if (errlen > 0) snprintf(errbuf, errlen, "%s", message);
    return -1;
}

int loupe_jpeg_decode(const char *path, int *width, int *height, int *channels,
                      unsigned char **pixels, char *errbuf, size_t errlen) {
    *pixels = NULL;
    FILE *file = fopen(path, "rb");
    if (file == NULL) return fail(errbuf, errlen, strerror(errno));

    struct jpeg_decompress_struct cinfo;
    struct loupe_error_manager err;
    // Written after setjmp and read after longjmp, so volatile (C11 7.13.2.1).
    unsigned char *volatile buffer = NULL;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = loupe_error_exit;
    err.base.emit_message = loupe_emit_message;
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(file);
        free(buffer);
        return fail(errbuf, errlen, err.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, file);
    jpeg_read_header(&cinfo, TRUE);
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        break;
    default: {
        int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
        int space = (int)cinfo.jpeg_color_space;
        jpeg_destroy_decompress(&cinfo);
        fclose(file);
        if (cmyk) return fail(errbuf, errlen, "CMYK JPEGs are not supported; convert the file to RGB first");
        char message[64];
        snprintf(message, sizeof message, "unsupported JPEG colour space %d", space);
        return fail(errbuf, errlen, message);
    }
    }
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    buffer = malloc(stride * cinfo.output_height);
    if (buffer == NULL) {
        jpeg_destroy_decompress(&cinfo);
        fclose(file);
        return fail(errbuf, errlen, "out of memory for the decoded pixels");
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buffer + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = cinfo.output_components;
    *pixels = buffer;
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    return 0;
}

void loupe_jpeg_free(unsigned char *pixels) { free(pixels); }
