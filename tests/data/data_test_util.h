// Helpers for the data tests: writers of IDX (plain or gzip), CIFAR records and JPEG/PNG (libjpeg/libpng), and a
// cap on the address space for tests of bounded allocations.
#pragma once

#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "data/image.h"
#include "test_util.h"

namespace ijepa::data::testing {

inline void append_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// An IDX file of unsigned bytes: magic 0x0000 08 <ndims>, big-endian dims, values.
inline std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& values) {
  std::string out{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (uint32_t d : dims) append_be32(out, d);
  out.append(values.begin(), values.end());
  return out;
}

inline void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  if (file == nullptr ||
      gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size())) {
    throw std::runtime_error("cannot write " + path);
  }
  gzclose(file);
}

// n images of rows x cols where pixel (i, y, x) = (i * 7 + y * cols + x) % 256, and labels i % 10.
inline void write_idx_pair(const std::string& folder, const std::string& prefix, uint32_t n, uint32_t rows,
                           uint32_t cols, bool gzip) {
  std::vector<uint8_t> pixels, labels;
  for (uint32_t i = 0; i < n; ++i) {
    for (uint32_t p = 0; p < rows * cols; ++p) pixels.push_back(static_cast<uint8_t>((i * 7 + p) % 256));
    labels.push_back(static_cast<uint8_t>(i % 10));
  }
  const std::string images = folder + "/" + prefix + "-images-idx3-ubyte";
  const std::string label_file = folder + "/" + prefix + "-labels-idx1-ubyte";
  if (gzip) {
    write_gzip(images + ".gz", idx_bytes({n, rows, cols}, pixels));
    write_gzip(label_file + ".gz", idx_bytes({n}, labels));
  } else {
    ijepa::testing::write_file(images, idx_bytes({n, rows, cols}, pixels));
    ijepa::testing::write_file(label_file, idx_bytes({n}, labels));
  }
}

// One CIFAR record: labels then planes R, G, B where the plane c pixel p = (seed + c * 50 + p) % 256.
inline std::string cifar_record(const std::vector<uint8_t>& labels, int seed) {
  std::string out(labels.begin(), labels.end());
  for (int c = 0; c < 3; ++c) {
    for (int p = 0; p < 1024; ++p) out.push_back(static_cast<char>((seed + c * 50 + p) % 256));
  }
  return out;
}

inline std::string encode_jpeg(const Image& image, int quality = 95) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = image.width;
  cinfo.image_height = image.height;
  cinfo.input_components = image.channels;
  cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixels.data()) + cinfo.next_scanline * image.width * image.channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  free(buffer);
  return out;
}

inline void on_png_write(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

// A PNG of raw rows (already in the layout of color_type and bit_depth; 16-bit samples big-endian), with a
// palette and its transparency (tRNS) when given.
inline std::string encode_png(int width, int height, int color_type, int bit_depth, const std::vector<uint8_t>& raw,
                              const std::vector<png_color>& palette = {}, std::vector<png_byte> palette_alpha = {}) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) throw std::runtime_error("png encode failed");
  png_set_write_fn(png, &out, on_png_write, nullptr);
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!palette_alpha.empty()) {
    png_set_tRNS(png, info, palette_alpha.data(), static_cast<int>(palette_alpha.size()), nullptr);
  }
  png_write_info(png, info);
  const size_t stride = raw.size() / height;
  for (int y = 0; y < height; ++y) png_write_row(png, raw.data() + y * stride);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// An RGB image: red ramps along x, green along y, blue constant. Smooth, so JPEG keeps it close.
inline Image gradient_image(int height, int width) {
  Image image{height, width, 3, std::vector<uint8_t>(static_cast<size_t>(height) * width * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &image.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, height - 1));
      p[2] = 128;
    }
  }
  return image;
}

// Caps this process's address space at its size now plus `extra_bytes` while in scope, so that a test of a
// bounded allocation fails with bad_alloc, were the bound lost, instead of exhausting the machine's memory.
class AddressSpaceCap {
 public:
  explicit AddressSpaceCap(size_t extra_bytes) {
    getrlimit(RLIMIT_AS, &previous_);
    rlimit cap = previous_;
    cap.rlim_cur = std::min<rlim_t>(previous_.rlim_max, mapped_bytes() + extra_bytes);
    setrlimit(RLIMIT_AS, &cap);
  }
  ~AddressSpaceCap() { setrlimit(RLIMIT_AS, &previous_); }
  AddressSpaceCap(const AddressSpaceCap&) = delete;
  AddressSpaceCap& operator=(const AddressSpaceCap&) = delete;

 private:
  static size_t mapped_bytes() {
    size_t pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    return pages * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }
  rlimit previous_{};
};

}  // namespace ijepa::data::testing
