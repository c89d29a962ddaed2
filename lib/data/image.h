// Decoded images, the exception for an unreadable sample, and the JPEG/PNG decoders.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ijepa::data {

// 8-bit pixels, interleaved: pixels[(y * width + x) * channels + c].
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // [H, W, C]
};

// One sample cannot be read or decoded. Not fatal: the loader replaces the sample, warns once and counts it.
class CorruptSample : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Decodes a JPEG or PNG held in memory (the format is sniffed from the bytes, not the file name) into RGB,
// as PIL's convert("RGB") would: grayscale is replicated, palettes expanded, alpha dropped, 16-bit samples
// reduced to their high byte, CMYK JPEGs converted. Throws CorruptSample naming `name` when undecodable
// or truncated.
Image decode_image(const std::string& bytes, const std::string& name);

}  // namespace ijepa::data
