#include "l7/tls/openssl_ptr.h"

#include <openssl/err.h>

#include <climits>

namespace capstan::l7::tls {

std::string takeOpensslError(const char* fallback) {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    if (!out.empty()) out += "; ";
    // ERR_reason_error_string: the reason alone ("no start line"), without the library and
    // function noise of ERR_error_string_n; NULL for a code OpenSSL has no text for.
    const char* reason = ERR_reason_error_string(code);
    out += reason != nullptr ? reason : "OpenSSL error " + std::to_string(code);
  }
  return out.empty() ? std::string(fallback) : out;
}

BioPtr memoryBio(std::string_view text) {
  if (text.size() > static_cast<size_t>(INT_MAX)) return nullptr;
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace capstan::l7::tls
