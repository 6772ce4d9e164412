// TicketKeys: the keys that seal TLS session tickets, shared by every worker's ServerContext so
// that a session resumes on whichever worker (SO_REUSEPORT spreads a client's connections over
// all of them) and whatever certificate set is published since.
//
// A ticket (RFC 5077 4 for TLS 1.2; RFC 8446 4.6.1, the PSK identity of NewSessionTicket, for TLS
// 1.3) is the session state encrypted under a key only this process knows, in the format of RFC
// 5077 4: key name (16 bytes), IV, AES-256-CBC ciphertext, HMAC-SHA256. OpenSSL builds and checks
// it; TicketKeys supplies the keys through the callback of SSL_CTX_set_tlsext_ticket_key_evp_cb
// (OpenSSL 3.0).
//
// Rotation (RFC 5077 5.5: keys should be changed regularly, for forward secrecy of the sessions
// they seal): rotate() makes a new key the encrypting one and keeps the one before for
// decrypting only; a ticket under that previous key still resumes and is replaced by one under
// the new key. The key before the previous one is dropped, so a ticket resumes for at least one
// period and at most two. The control thread calls rotate() every kTicketKeyRotationPeriod;
// ServerContext advertises that period as the ticket lifetime.
//
// Thread safety: rotate() on the control thread, the callbacks on every worker at once. The key
// ring is an immutable snapshot swapped atomically; a worker's callback reads one snapshot.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "model/result.h"

namespace capstan::l7::tls {

inline constexpr std::chrono::seconds kTicketKeyRotationPeriod = std::chrono::hours(1);

class TicketKeys {
 public:
  // A ring holding one new random key.
  static Result<std::shared_ptr<TicketKeys>> create();

  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // A new random key encrypts from now on; the current one is kept for decryption.
  Status rotate();

  // The callback of SSL_CTX_set_tlsext_ticket_key_evp_cb, for one handshake. Encrypting: fills
  // keyName and iv, initialises `cipher` and `mac` with the current key, returns 1 (-1 on
  // failure). Decrypting: finds the key named keyName and returns 1 (the current key), 2 (the
  // previous one: OpenSSL then issues a fresh ticket) or 0 (unknown: a full handshake).
  int onTicket(unsigned char* keyName, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
               bool encrypt) const;

  // How many keys were made (1 after create(), +1 per rotate()): for a metric.
  uint64_t generation() const;

 private:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aesKey;
    std::array<unsigned char, 32> hmacKey;
  };
  struct Ring {
    Ring() = default;
    Ring(const Ring&) = delete;
    ~Ring();  // wipes the keys
    Key current;
    Key previous;
    bool hasPrevious = false;
    uint64_t generation = 0;
  };

  TicketKeys() = default;

  std::atomic<std::shared_ptr<const Ring>> ring_;
};

}  // namespace capstan::l7::tls
