#include "common/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

#include "common/errors.h"
#include "common/files.h"

namespace ijepa::common {

struct Sha256::State {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  bool finished = false;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("sha256: OpenSSL digest initialisation failed");
  }
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  if (state_->finished) throw std::logic_error("sha256: update after hex_digest");
  if (size > 0 && EVP_DigestUpdate(state_->ctx.get(), data, size) != 1) {
    throw std::runtime_error("sha256: OpenSSL digest update failed");
  }
}

std::string Sha256::hex_digest() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (state_->finished || EVP_DigestFinal_ex(state_->ctx.get(), digest.data(), &length) != 1) {
    throw std::runtime_error("sha256: digest already taken or OpenSSL failed");
  }
  state_->finished = true;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string sha256_file(const std::string& path) {
  Sha256 hash;
  read_file_in_pieces(path, [&](const char* data, size_t size) { hash.update(data, size); });
  return hash.hex_digest();
}

}  // namespace ijepa::common
