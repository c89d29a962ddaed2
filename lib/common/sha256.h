// Streaming SHA-256 (OpenSSL EVP): checkpoint checksums and the encoder_sha256 of summary.json.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace ijepa::common {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  // Lower-case hex digest; the object cannot be updated afterwards.
  std::string hex_digest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// SHA-256 of a whole file, in hex. Throws InputError naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace ijepa::common
