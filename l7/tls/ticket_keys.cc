#include "l7/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "l7/tls/openssl_ptr.h"

namespace capstan::l7::tls {
namespace {

// OpenSSL's OSSL_PARAM wants a mutable string; it only reads it.
char kSha256[] = "SHA256";

}  // namespace

TicketKeys::Ring::~Ring() {
  OPENSSL_cleanse(&current, sizeof(current));
  OPENSSL_cleanse(&previous, sizeof(previous));
}

Result<std::shared_ptr<TicketKeys>> TicketKeys::create() {
  std::shared_ptr<TicketKeys> keys(new TicketKeys());
  if (Status s = keys->rotate(); !s.ok()) return s.error();
  return keys;
}

Status TicketKeys::rotate() {
  auto next = std::make_shared<Ring>();
  if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(&next->current), sizeof(Key)) != 1) {
    return Error("session ticket key: " + takeOpensslError("no random bytes"));
  }
  // Only the control thread writes ring_, so this load sees the latest ring.
  if (std::shared_ptr<const Ring> old = ring_.load()) {
    next->previous = old->current;
    next->hasPrevious = true;
    next->generation = old->generation;
  }
  ++next->generation;
  ring_.store(std::move(next));
  return okStatus();
}

uint64_t TicketKeys::generation() const { return ring_.load()->generation; }

int TicketKeys::onTicket(unsigned char* keyName, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, bool encrypt) const {
  const std::shared_ptr<const Ring> ring = ring_.load(std::memory_order_acquire);
  const Key* key = &ring->current;
  int found = 1;
  if (!encrypt) {
    if (std::memcmp(keyName, ring->current.name.data(), ring->current.name.size()) == 0) {
      found = 1;
    } else if (ring->hasPrevious &&
               std::memcmp(keyName, ring->previous.name.data(), ring->previous.name.size()) == 0) {
      key = &ring->previous;
      found = 2;
    } else {
      return 0;
    }
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmacKey.data()), key->hmacKey.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, kSha256, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  if (encrypt) {
    // AES-256-CBC's IV is one 16-byte block (OpenSSL's buffer holds EVP_MAX_IV_LENGTH).
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::copy(key->name.begin(), key->name.end(), keyName);
    return EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aesKey.data(), iv) == 1 ? 1
                                                                                               : -1;
  }
  return EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aesKey.data(), iv) == 1 ? found
                                                                                             : -1;
}

}  // namespace capstan::l7::tls
