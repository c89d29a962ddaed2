// JPEG (libjpeg-turbo) and PNG (libpng) decoding into 8-bit RGB.
//
// Both libraries report fatal errors by longjmp. The setjmp sits in a small function whose state lives in
// objects owned by its caller, so nothing local is left indeterminate after the jump, and no C++ exception
// ever unwinds through the C libraries.
#include "data/image.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

namespace ijepa::data {

namespace {

// PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): it refuses larger images, and so do we, before
// any pixel buffer is allocated.
constexpr int64_t kMaxPixels = 178956970;

std::string too_large(int64_t width, int64_t height) {
  return "image too large (" + std::to_string(width) + "x" + std::to_string(height) + ", more than " +
         std::to_string(kMaxPixels) + " pixels)";
}

// ---- JPEG ----

// Standard layout with the libjpeg error manager first, so cinfo->err can be cast back to it.
struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

struct JpegState {
  jpeg_decompress_struct cinfo{};
  JpegError error{};
  std::vector<uint8_t> cmyk_row;
  std::string refusal;  // why a well-formed file is not decoded
};

JpegError* jpeg_error(j_common_ptr cinfo) { return reinterpret_cast<JpegError*>(cinfo->err); }

void on_jpeg_error(j_common_ptr cinfo) {
  JpegError* error = jpeg_error(cinfo);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// libjpeg only warns on a file that ends early and fills the rest with grey; PIL refuses such files, and so
// do we. Other warnings (e.g. extraneous bytes between markers) are tolerated, as PIL does.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error(cinfo)->truncated = true;
}

// Adobe CMYK JPEGs store inverted ink values; PIL converts them with R = (255 - C)(255 - K) / 255.
void cmyk_to_rgb(const uint8_t* cmyk, int width, bool inverted, uint8_t* rgb) {
  for (int x = 0; x < width; ++x) {
    const int k = inverted ? cmyk[4 * x + 3] : 255 - cmyk[4 * x + 3];
    for (int c = 0; c < 3; ++c) {
      const int ink = inverted ? cmyk[4 * x + c] : 255 - cmyk[4 * x + c];
      rgb[3 * x + c] = static_cast<uint8_t>((ink * k + 127) / 255);
    }
  }
}

bool jpeg_decode_into(JpegState* state, Image* image) {
  jpeg_decompress_struct* cinfo = &state->cinfo;
  if (setjmp(state->error.jump)) return false;
  jpeg_read_header(cinfo, TRUE);
  // Checked before jpeg_start_decompress, which allocates whole-image buffers for progressive files.
  if (static_cast<int64_t>(cinfo->image_width) * cinfo->image_height > kMaxPixels) {
    state->refusal = too_large(cinfo->image_width, cinfo->image_height);
    return false;
  }
  const bool cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(cinfo);
  const int width = static_cast<int>(cinfo->output_width);
  const int height = static_cast<int>(cinfo->output_height);
  image->height = height;
  image->width = width;
  image->channels = 3;
  image->pixels.resize(static_cast<size_t>(height) * width * 3);
  if (cmyk) state->cmyk_row.resize(static_cast<size_t>(width) * 4);
  while (cinfo->output_scanline < cinfo->output_height) {
    uint8_t* out = image->pixels.data() + static_cast<size_t>(cinfo->output_scanline) * width * 3;
    JSAMPROW row = cmyk ? state->cmyk_row.data() : out;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) return false;
    if (cmyk) cmyk_to_rgb(row, width, cinfo->saw_Adobe_marker, out);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

Image decode_jpeg(const std::string& bytes, const std::string& name) {
  JpegState state;
  state.cinfo.err = jpeg_std_error(&state.error.manager);
  state.error.manager.error_exit = on_jpeg_error;
  state.error.manager.emit_message = on_jpeg_message;
  jpeg_create_decompress(&state.cinfo);
  jpeg_mem_src(&state.cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  Image image;
  const bool ok = jpeg_decode_into(&state, &image);
  jpeg_destroy_decompress(&state.cinfo);
  if (!state.refusal.empty()) throw CorruptSample(name + ": " + state.refusal);
  if (!ok) throw CorruptSample(name + ": corrupt JPEG (" + state.error.message + ")");
  if (state.error.truncated) throw CorruptSample(name + ": truncated JPEG");
  return image;
}

// ---- PNG ----

struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const std::string* bytes = nullptr;
  size_t offset = 0;
  std::string message;
  std::string refusal;  // why a well-formed file is not decoded
  std::vector<png_bytep> rows;
  std::vector<uint8_t> grey16;  // 16-bit grey rows, before grey16_to_rgb
};

void on_png_read(png_structp png, png_bytep out, png_size_t count) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (count > state->bytes->size() - state->offset) png_error(png, "file ends early");
  std::memcpy(out, state->bytes->data() + state->offset, count);
  state->offset += count;
}

void on_png_error(png_structp png, png_const_charp message) {
  static_cast<PngState*>(png_get_error_ptr(png))->message = message;
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

// PIL opens 16-bit greyscale as mode I;16, whose conversion to RGB clips each value to 255 (0x00F0 -> 240,
// 0x1234 -> 255); 16-bit RGB and grey+alpha keep their high byte instead.
bool is_grey16(png_structp png, png_infop info) {
  return png_get_bit_depth(png, info) == 16 && png_get_color_type(png, info) == PNG_COLOR_TYPE_GRAY;
}

// Transformations to 8-bit RGB as PIL's convert("RGB"): palette expanded, grey replicated, alpha dropped, 16-bit
// samples cut to the high byte. Transparency is ignored: a tRNS chunk becomes alpha when a palette is expanded,
// so alpha is dropped then too. 16-bit grey is read as it is, for grey16_to_rgb.
void png_request_rgb8(png_structp png, png_infop info) {
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (!is_grey16(png, info)) {
    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
}

// Big-endian 16-bit grey to RGB, clipped as PIL's I;16 -> RGB.
void grey16_to_rgb(const std::vector<uint8_t>& grey16, std::vector<uint8_t>* rgb) {
  for (size_t i = 0; i < rgb->size() / 3; ++i) {
    const uint8_t value = grey16[2 * i] == 0 ? grey16[2 * i + 1] : 255;
    std::fill_n(rgb->data() + 3 * i, 3, value);
  }
}

bool png_decode_into(PngState* state, Image* image) {
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_set_read_fn(state->png, state, on_png_read);
  png_read_info(state->png, state->info);
  const int width = static_cast<int>(png_get_image_width(state->png, state->info));
  const int height = static_cast<int>(png_get_image_height(state->png, state->info));
  if (static_cast<int64_t>(width) * height > kMaxPixels) {
    state->refusal = too_large(width, height);
    return false;
  }
  const bool grey16 = is_grey16(state->png, state->info);
  png_request_rgb8(state->png, state->info);
  const size_t row_bytes = static_cast<size_t>(width) * (grey16 ? 2 : 3);
  if (png_get_rowbytes(state->png, state->info) != row_bytes) {
    png_error(state->png, "unexpected row layout after conversion to RGB");
  }
  image->height = height;
  image->width = width;
  image->channels = 3;
  image->pixels.resize(static_cast<size_t>(height) * width * 3);
  if (grey16) state->grey16.resize(static_cast<size_t>(height) * row_bytes);
  uint8_t* first_row = grey16 ? state->grey16.data() : image->pixels.data();
  state->rows.resize(height);
  for (int y = 0; y < height; ++y) state->rows[y] = first_row + static_cast<size_t>(y) * row_bytes;
  png_read_image(state->png, state->rows.data());
  // No png_read_end: the chunks after the image data change no pixel, and PIL decodes a file whose IEND is
  // missing or whose later chunks are damaged.
  if (grey16) grey16_to_rgb(state->grey16, &image->pixels);
  return true;
}

Image decode_png(const std::string& bytes, const std::string& name) {
  PngState state;
  state.bytes = &bytes;
  state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_png_error, on_png_warning);
  if (state.png != nullptr) state.info = png_create_info_struct(state.png);
  if (state.info == nullptr) {
    png_destroy_read_struct(&state.png, nullptr, nullptr);
    throw std::bad_alloc();
  }
  Image image;
  const bool ok = png_decode_into(&state, &image);
  png_destroy_read_struct(&state.png, &state.info, nullptr);
  if (!state.refusal.empty()) throw CorruptSample(name + ": " + state.refusal);
  if (!ok) throw CorruptSample(name + ": corrupt PNG (" + state.message + ")");
  return image;
}

bool starts_with(const std::string& bytes, const char* magic, size_t length) {
  return bytes.size() >= length && std::memcmp(bytes.data(), magic, length) == 0;
}

}  // namespace

Image decode_image(const std::string& bytes, const std::string& name) {
  Image image;
  if (starts_with(bytes, "\xFF\xD8\xFF", 3)) {
    image = decode_jpeg(bytes, name);
  } else if (starts_with(bytes, "\x89PNG\r\n\x1A\n", 8)) {
    image = decode_png(bytes, name);
  } else {
    throw CorruptSample(name + ": neither a JPEG nor a PNG file");
  }
  if (image.height <= 0 || image.width <= 0) throw CorruptSample(name + ": empty image");
  return image;
}

}  // namespace ijepa::data
