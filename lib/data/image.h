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
// as PIL's convert("RGB") would: grayscale is replicated, palettes expanded, alpha and transparency dropped,
// 16-bit RGB and grey+alpha samples reduced to their high byte, 16-bit grey clipped to 255 (PIL's mode I;16),
// CMYK JPEGs converted. Throws CorruptSample naming `name` when undecodable, truncated, or larger than PIL's
// decompression-bomb limit of 178956970 pixels (refused from the header, before decoding).
Image decode_image(const std::string& bytes, const std::string& name);

}  // namespace ijepa::data
