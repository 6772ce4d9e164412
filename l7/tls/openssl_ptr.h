// Owning pointers for OpenSSL objects, and the text of OpenSSL's error queue, for the rest of
// l7/tls/. Each deleter calls the object's *_free function, which drops one reference (OpenSSL
// objects are reference-counted; *_up_ref adds one).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

namespace capstan::l7::tls {

template <typename T, void (*kFree)(T*)>
struct OpensslFree {
  void operator()(T* p) const { kFree(p); }
};

using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, OpensslFree<X509, X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY, EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpensslFree<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpensslFree<SSL, SSL_free>>;

inline void freeX509Stack(STACK_OF(X509) * chain) { sk_X509_pop_free(chain, X509_free); }
using X509StackPtr = std::unique_ptr<STACK_OF(X509), OpensslFree<STACK_OF(X509), freeX509Stack>>;

// Drains this thread's OpenSSL error queue into one line ("reason; reason"), or `fallback` when
// the queue is empty. OpenSSL keeps errors per thread until read: every failed call on the control
// thread must drain it, or a later, unrelated failure would report a stale reason.
std::string takeOpensslError(const char* fallback = "unknown OpenSSL error");

// A read-only memory BIO over `text` (no copy; `text` must outlive the BIO).
BioPtr memoryBio(std::string_view text);

}  // namespace capstan::l7::tls
